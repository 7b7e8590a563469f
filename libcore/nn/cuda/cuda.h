/* cuda.h — the CUDA kernels and device runtime of the GPU backend (C API).
 *
 * Every kernel mirrors one CPU function: same name with a cuda_ prefix, same
 * arguments in the same order (outputs first, then inputs, weights, shapes
 * last), same semantics (backward ops ADD into weight gradients and dinp as
 * layers.h says), all pointers device memory unless a comment says "host".
 * The CPU twin of each is named beside it. Matrix products go through cuBLAS
 * with fp32 accumulation (TF32 tensor cores only after cuda_set_tf32(1));
 * reductions are fixed-order so results do not change from run to run.
 *
 * Every CUDA and cuBLAS call is checked; failures die() through base/util.h
 * naming the call. Operations run in order on the default stream;
 * cuda_download returns when the data is on the host.
 */
#ifndef LBDPO_CUDA_H
#define LBDPO_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "libcore/nn/adamw.h"
#include "libcore/nn/cpu/kernels.h" /* logit_row: the hand-off rows, shared with the CPU */

/* ---- devices ---- */
/* Number of usable CUDA devices, or 0 with the reason in why (no driver, no
 * device); never dies. */
int cuda_probe(char *why, size_t n);
/* Select the device of a --device spec "cuda" (device 0) or "cuda:N": dies
 * with one line when the spec is malformed, no GPU is present or N is out of
 * range. Creates the cuBLAS handle. Returns N. */
int cuda_select(const char *spec);
/* Name and memory of the selected device (host string). */
void cuda_device_info(char *name, size_t n, size_t *total_bytes);
/* TF32 tensor-core math for matrix products (0 = plain fp32, the default):
 * cuBLAS's CUBLAS_COMPUTE_32F_FAST_TF32, inputs rounded to a 10-bit
 * mantissa, fp32 accumulation; the other kernels stay fp32. */
void cuda_set_tf32(int on);
int cuda_tf32(void); /* the current setting */
/* Wait for every queued operation (and surface its error). */
void cuda_sync(void);

/* ---- memory ---- */
/* Dies when the device is out of memory, saying how many bytes were asked,
 * how many are free, and to lower the batch tokens or the sequence length. */
void *cuda_alloc(size_t bytes);
void cuda_free(void *d);
void cuda_upload(void *d, const void *host, size_t bytes);
void cuda_download(void *host, const void *d, size_t bytes);
void cuda_memset0(void *d, size_t bytes);

/* ---- layers (CPU twins in libcore/nn/cpu/layers.c, same names without cuda_) ---- */
void cuda_embed_forward(float *out, const uint32_t *tok, const int *pos, const float *wte, const float *wpe, int T,
			int C);
void cuda_embed_backward(float *dwte, float *dwpe, const float *dout, const uint32_t *tok, const int *pos, int T,
			 int C);
void cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, float w_off, float eps, int T,
			  int C);
void cuda_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w, float w_off,
			   const float *rstd, int T, int C);
void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
			    float eps, int T, int C);
void cuda_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
			     const float *mean, const float *rstd, int T, int C);
void cuda_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int T, int IC, int OC,
			 int w_in_out);
void cuda_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
			  int T, int IC, int OC, int w_in_out);
void cuda_rope_forward(float *x, const float *cs, int T, int n_heads, int head_dim, int stride);
void cuda_rope_backward(float *dx, const float *cs, int T, int n_heads, int head_dim, int stride);
/* head_dim ≤ CUDA_MAX_HEAD_DIM (dies otherwise). */
#define CUDA_MAX_HEAD_DIM 256
/* scale 0: 1/√hd; cap 0: no soft-cap (kernels.h) */
void cuda_attention_forward(float *out, float *lse, const float *qkv, const int *ka, const int *kb, const int *kc,
			    int T, int H, int KV, int hd, float scale, float cap);
void cuda_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,
			     const int *ka, const int *kb, const int *kc, const int *seq_off, int n_seq, int T, int H,
			     int KV, int hd, float scale, float cap);
void cuda_swiglu_forward(float *out, const float *inp, int T, int F);
void cuda_swiglu_backward(float *dinp, const float *dout, const float *inp, int T, int F);
void cuda_gelu_forward(float *out, const float *inp, size_t n);
void cuda_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void cuda_residual_forward(float *out, const float *a, const float *b, size_t n);
void cuda_add_inplace(float *acc, const float *x, size_t n);

/* ---- language-model head and the loss hand-off (CPU twins in
 * libcore/nn/cpu/layers.c, same names without cuda_) ---- */
void cuda_lmhead_forward(float *logits, const float *h, const float *w, int T, int C, int V);
void cuda_lmhead_forward1(float *logits, const float *h, const float *w, int C, int V);
void cuda_lmhead_backward(float *dh, float *dw, const float *dz, const float *h, const float *w, int n, int C, int V);
/* LoRA adapters (CPU twins in libcore/nn/cpu/lora.c) */
void cuda_gemm_strided(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
		       int ldb, float beta, float *Cm, int ldc);
void cuda_dropout_mask(float *out, const float *x, size_t n, float p, uint64_t key);
void cuda_logsoftmax_rows(float *lse, float *lp, float *ent, const float *logits, const logit_row *rows, int T, int V);
/* st: device [n_seq,4] doubles */
void cuda_seq_logp_sums(double *st, const float *lp, const float *ent, const logit_row *rows, const int *seq_off,
			int n_seq);
void cuda_logit_grad_rows(float *logits, const float *lse, const int *idx, const double *w, const int32_t *y, int n,
			  int V);
void cuda_rows_gather(float *dst, const float *src, const int *idx, int n, int C);
void cuda_rows_scatter(float *dst, const float *src, const int *idx, int n, int C);
void cuda_rows_compact(float *x, const int *idx, int n, int C);
void cuda_pool_forward(float *last, float *mean, const float *x, const int *seq_off, const int *seq_P, int n_seq,
		       int C);
void cuda_pool_backward(float *dx, const float *d_last, const float *d_mean, const uint8_t *has_last,
			const uint8_t *has_mean, const int *seq_off, const int *seq_P, int n_seq, int C);
void cuda_kv_append(float *kc, float *vc, const float *qkv, int at, int n, int H, int KV, int hd, int QKV);
void cuda_attention_decode(float *out, const float *qkv, const float *kc, const float *vc, int len0, int n, int H,
			   int KV, int hd, int QKV, float scale, float cap);

/* ---- the operations other model families add (CPU twins in
 * libcore/nn/cpu/layers.c, same names without cuda_; layers.h gives the formulas).
 * rope_part runs the kernels of rope; Gemma's RMSNorm and attention are
 * the w_off, scale and cap arguments of rmsnorm and attention. ---- */
void cuda_headnorm_forward(float *x, float *xs, float *rstd, const float *w, float w_off, float eps, int T, int nh,
			   int hd, int stride);
void cuda_headnorm_backward(float *dx, float *dw, const float *xs, const float *w, float w_off, const float *rstd,
			    int T, int nh, int hd, int stride);
void cuda_rope_part_forward(float *x, const float *cs, int T, int n_heads, int head_dim, int rot_dim, int stride);
void cuda_rope_part_backward(float *dx, const float *cs, int T, int n_heads, int head_dim, int rot_dim, int stride);
void cuda_gelu_exact_forward(float *out, const float *inp, size_t n);
void cuda_gelu_exact_backward(float *dinp, const float *dout, const float *inp, size_t n);
void cuda_geglu_forward(float *out, const float *inp, int T, int F);
void cuda_geglu_backward(float *dinp, const float *dout, const float *inp, int T, int F);
void cuda_softcap_forward(float *x, size_t n, float cap);
void cuda_softcap_backward(float *dx, const float *y, size_t n, float cap);

/* ---- optimizer and reductions (CPU twins in libcore/nn/adamw.c) ---- */
void cuda_adamw_update(float *param, const float *grad, float *m, float *v, size_t n, double lr, double wd,
		       const adamw_hp *hp, long t); /* hp: host */
double cuda_sumsq(const float *g, size_t n);        /* result on the host */
void cuda_scale_inplace(float *g, size_t n, float s);
/* 1 when every x[i] is finite (CPU twin: all_finite in libcore/train/engine.c). */
int cuda_all_finite(const float *x, size_t n);

#ifdef __cplusplus
}
#endif

#endif
