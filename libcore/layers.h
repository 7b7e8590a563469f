/* layers.h — transformer layer kernels, forward and backward (llm.c style).
 *
 * Conventions: outputs first, then inputs, then weights, shapes last.
 * Activations are row-major [T, X] with T tokens of a packed batch.
 * Every backward ADDS into its weight gradients and into dinp (callers zero
 * what must start at zero). Matrix products go through OpenBLAS sgemm and
 * are called outside OpenMP parallel regions; the rest is OpenMP loops.
 *
 * This file is the CPU "backend table" of DESIGN §5: a CUDA build replaces
 * these functions, not their callers.
 */
#ifndef LBDPO_LAYERS_H
#define LBDPO_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* out[t] = wte[tok[t]] (+ wpe[pos[t]] if wpe). */
void embed_forward(float *out, const uint32_t *tok, const int *pos, const float *wte, const float *wpe,
		   int T, int C);
void embed_backward(float *dwte, float *dwpe, const float *dout, const uint32_t *tok, const int *pos, int T,
		    int C);

/* RMSNorm: out = x / sqrt(mean(x^2) + eps) * w; rstd[t] kept for backward. */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, float eps, int T, int C);
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
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
/* dinp += dout · W(ᵀ); dw += ...; dbias += Σ_t dout. dinp/dbias may be NULL. */
void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
		     int T, int IC, int OC, int w_in_out);

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
 *   out = softmax(q·kᵀ/√hd) · v ;  lse[t,h] = log Σ_j exp(s_tj) kept so the
 *   backward recomputes probabilities instead of storing them. */
void attention_forward(float *out, float *lse, const float *qkv, const int *ka, const int *kb, const int *kc,
		       int T, int H, int KV, int hd);
/* dqkv += ...; needs out and lse of the forward. Parallel over
 * (sequence, kv head) so that dk/dv of grouped heads never race. */
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,
			const int *ka, const int *kb, const int *kc, const int *seq_off, int n_seq, int T, int H,
			int KV, int hd);

/* SwiGLU: inp rows [g (F) | u (F)], out = silu(g)·u, silu(g) = g·σ(g). */
void swiglu_forward(float *out, const float *inp, int T, int F);
void swiglu_backward(float *dinp, const float *dout, const float *inp, int T, int F);

/* GELU, tanh approximation: 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))). */
void gelu_forward(float *out, const float *inp, size_t n);
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* out += inp (elementwise), the residual connection. */
void residual_forward(float *out, const float *a, const float *b, size_t n);
void add_inplace(float *acc, const float *x, size_t n);

#endif
