/* backend.h — the compute backend: device memory and every numeric operation
 * of the forward, the backward, the loss hand-off and AdamW
 * (doc/design.md §6, "The backend contract").
 *
 * model.c and engine.c call only this table. The CPU backend
 * (backend_cpu.c) is the kernels of layers.c, OpenBLAS and adamw.c; a GPU
 * backend implements the same entries on device memory and keeps weights,
 * gradients, AdamW moments and activations resident.
 *
 * Rules every backend keeps:
 *  - Pointers named d* or documented as "device" come from alloc(); host
 *    pointers are plain memory. A backend with unified != 0 (the CPU one)
 *    has one address space: device memory is host memory, and upload or
 *    download between the same pointer may be skipped by the caller.
 *  - Operations are ordered as called (a stream); download() returns when
 *    the data is on the host. Results must not depend on the thread count
 *    beyond what the CPU kernels document (sums of sequence scores are
 *    serial and in row order).
 *  - Backward operations ADD into weight gradients and into dinp, as in
 *    layers.h; memset() zeroes what must start at zero.
 *  - Small index arrays (token ids, positions, attention ranges, logit row
 *    descriptions) are built on the host and uploaded once per batch.
 *
 * The host keeps the per-pair scalar math (losses, the β head,
 * regularizers): the hand-off is the per-sequence sums of seq_logp_sums,
 * the pooled hidden states of pool_forward down, and per-row logit weights
 * and pooled-state gradients up (logit_grad_rows, pool_backward).
 */
#ifndef LBDPO_BACKEND_H
#define LBDPO_BACKEND_H

#include <stddef.h>
#include <stdint.h>


#include "libcore/nn/adamw.h"
#include "libcore/nn/cpu/kernels.h"

typedef struct lb_backend {
	const char *name; /* "cpu", "cuda", ... */
	int unified;      /* device memory is host memory */

	/* ---- memory ---- */
	void *(*alloc)(size_t bytes); /* dies when out of memory, naming the size */
	void (*free)(void *d);
	void (*upload)(void *d, const void *h, size_t bytes);
	void (*download)(void *h, const void *d, size_t bytes);
	void (*memset0)(void *d, size_t bytes);
	void (*set_threads)(int n); /* 0 = library default */

	/* ---- forward and backward kernels (layers.h documents each) ---- */
	void (*embed_forward)(float *out, const uint32_t *tok, const int *pos, const float *wte, const float *wpe,
			      int T, int C);
	void (*embed_backward)(float *dwte, float *dwpe, const float *dout, const uint32_t *tok, const int *pos, int T,
			       int C);
	/* gain w_off + w: w_off 0, or 1 for Gemma */
	void (*rmsnorm_forward)(float *out, float *rstd, const float *inp, const float *w, float w_off, float eps,
				int T, int C);
	void (*rmsnorm_backward)(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
				 float w_off, const float *rstd, int T, int C);
	void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp, const float *w,
				  const float *b, float eps, int T, int C);
	void (*layernorm_backward)(float *dinp, float *dw, float *db, const float *dout, const float *inp,
				   const float *w, const float *mean, const float *rstd, int T, int C);
	void (*matmul_forward)(float *out, const float *inp, const float *w, const float *bias, int T, int IC, int OC,
			       int w_in_out);
	void (*matmul_backward)(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
				const float *w, int T, int IC, int OC, int w_in_out);
	/* cs [T,head_dim] cos|sin: built on the host by rope.c (every scaling
	 * scheme) and uploaded by model.c, so no backend computes it */
	void (*rope_forward)(float *x, const float *cs, int T, int n_heads, int head_dim, int stride);
	void (*rope_backward)(float *dx, const float *cs, int T, int n_heads, int head_dim, int stride);
	/* score scale (0: 1/√hd) and soft-cap (0: none; Gemma 2's logit cap) */
	void (*attention_forward)(float *out, float *lse, const float *qkv, const int *ka, const int *kb, const int *kc,
				  int T, int H, int KV, int hd, float scale, float cap);
	void (*attention_backward)(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,
				   const int *ka, const int *kb, const int *kc, const int *seq_off, int n_seq, int T,
				   int H, int KV, int hd, float scale, float cap);
	void (*swiglu_forward)(float *out, const float *inp, int T, int F);
	void (*swiglu_backward)(float *dinp, const float *dout, const float *inp, int T, int F);
	void (*gelu_forward)(float *out, const float *inp, size_t n);
	void (*gelu_backward)(float *dinp, const float *dout, const float *inp, size_t n);
	void (*residual_forward)(float *out, const float *a, const float *b, size_t n);

	/* ---- language-model head and the loss hand-off ---- */
	void (*lmhead_forward)(float *logits, const float *h, const float *w, int T, int C, int V);
	void (*lmhead_forward1)(float *logits, const float *h, const float *w, int C, int V);
	void (*lmhead_backward)(float *dh, float *dw, const float *dz, const float *h, const float *w, int n, int C,
				int V);
	void (*logsoftmax_rows)(float *lse, float *lp, float *ent, const float *logits, const logit_row *rows, int T,
				int V);
	/* st is device memory [n_seq,4] (doubles); download it */
	void (*seq_logp_sums)(double *st, const float *lp, const float *ent, const logit_row *rows, const int *seq_off,
			      int n_seq);
	void (*logit_grad_rows)(float *logits, const float *lse, const int *idx, const double *w, const int32_t *y,
				int n, int V);
	void (*rows_gather)(float *dst, const float *src, const int *idx, int n, int C);
	void (*rows_scatter)(float *dst, const float *src, const int *idx, int n, int C);
	void (*rows_compact)(float *x, const int *idx, int n, int C);
	void (*pool_forward)(float *last, float *mean, const float *x, const int *seq_off, const int *seq_P, int n_seq,
			     int C);
	void (*pool_backward)(float *dx, const float *d_last, const float *d_mean, const uint8_t *has_last,
			      const uint8_t *has_mean, const int *seq_off, const int *seq_P, int n_seq, int C);

	/* ---- decoding ---- */
	void (*kv_append)(float *kc, float *vc, const float *qkv, int at, int n, int H, int KV, int hd, int QKV);
	void (*attention_decode)(float *out, const float *qkv, const float *kc, const float *vc, int len0, int n, int H,
				 int KV, int hd, int QKV, float scale, float cap);

	/* ---- optimizer (adamw.h documents each) ---- */
	void (*adamw_update)(float *param, const float *grad, float *m, float *v, size_t n, double lr, double wd,
			     const adamw_hp *hp, long t);
	double (*sumsq)(const float *g, size_t n);
	void (*scale)(float *g, size_t n, float s);

	/* ---- added for more model families (layers.h documents each) ---- */
	void (*headnorm_forward)(float *x, float *xs, float *rstd, const float *w, float w_off, float eps, int T,
				 int nh, int hd, int stride);
	void (*headnorm_backward)(float *dx, float *dw, const float *xs, const float *w, float w_off, const float *rstd,
				  int T, int nh, int hd, int stride);
	void (*rope_part_forward)(float *x, const float *cs, int T, int n_heads, int head_dim, int rot_dim, int stride);
	void (*rope_part_backward)(float *dx, const float *cs, int T, int n_heads, int head_dim, int rot_dim,
				   int stride);
	void (*gelu_exact_forward)(float *out, const float *inp, size_t n);
	void (*gelu_exact_backward)(float *dinp, const float *dout, const float *inp, size_t n);
	void (*geglu_forward)(float *out, const float *inp, int T, int F);
	void (*geglu_backward)(float *dinp, const float *dout, const float *inp, int T, int F);
	void (*softcap_forward)(float *x, size_t n, float cap);
	void (*softcap_backward)(float *dx, const float *y, size_t n, float cap);

	/* ---- precision ---- */
	/* TF32 tensor-core math for the matrix products (matmul, lm head),
	 * fp32 accumulation; NULL: this backend's products are always plain
	 * fp32 (the CPU one). Set through backend_set_tf32. */
	void (*set_tf32)(int on);

	/* ---- LoRA adapters (layers.h documents each; NULL: no LoRA on this backend) ---- */
	void (*gemm)(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
		     float beta, float *Cm, int ldc);
	void (*dropout)(float *out, const float *x, size_t n, float p, uint64_t key);
} lb_backend;

/* The CPU backend (always present). */
extern const lb_backend lb_backend_cpu;
/* The CUDA backend (backend_cuda.c): linked only into CUDA builds, so
 * referenced weakly; never use these directly, backend_select_device()
 * checks them. */
extern const lb_backend lb_backend_cuda;
int backend_cuda_probe(char *why, size_t n);
const lb_backend *backend_cuda_open(const char *spec, char *desc, size_t n);

/* --device SPEC of every compute program: "cpu", "cuda" (device 0) or
 * "cuda:N"; NULL selects the default: cuda:0 when this build has the CUDA
 * backend and a GPU is present, else cpu. Call before loading a model.
 * Dies with one line when the spec is malformed (usage, exit 2), the build
 * has no CUDA backend, or the GPU is absent or out of range (exit 1).
 * Returns the choice as printed in summary lines and recorded in output
 * headers' history ("cpu", "cuda:0 (NAME, N GiB)"). */
const char *backend_select_device(const char *spec);
/* --tf32: allow TF32 tensor-core math for matrix products (1) or keep plain
 * fp32 (0, the default, so results compare with the CPU backend). Call
 * before or after backend_select_device; it holds for the backend chosen
 * then and any chosen later. Only the matrix products change (inputs
 * rounded to a 10-bit mantissa, fp32 accumulation: about 1e-3 relative
 * in each product); norms, attention, softmax and AdamW stay fp32. A
 * backend without TF32 (the CPU one) ignores it: its products are fp32
 * either way. When it takes effect, the device description (summary
 * lines, header history) ends in " tf32". */
void backend_set_tf32(int on);
/* --dtype: the precision of the CPU backend's matrix products (gemm_rm in
 * libcore/nn/cpu/gemm_bf16.h): BACKEND_FP32 (the default), BACKEND_BF16
 * (bf16 inputs, fp32 accumulation), BACKEND_AUTO (bf16 where it runs in
 * hardware). Everything else stays fp32, the weights and AdamW's master
 * copies included. BACKEND_BF16 dies (exit 1, one line) where the products
 * cannot run in bf16 hardware (a CPU without AVX512-BF16 or AMX, a build
 * without oneDNN, the CUDA backend); BACKEND_AUTO then prints a one-line
 * warning and stays fp32. When bf16 takes effect, the device description
 * (summary lines, header history) ends in " bf16". Call after
 * backend_select_device. Returns 1 when bf16 is on. */
enum { BACKEND_FP32 = 0, BACKEND_BF16, BACKEND_AUTO };
int backend_set_dtype(int dtype);
int backend_tf32(void); /* the last backend_set_tf32 (0 before any) */
/* The last choice of backend_select_device ("cpu" before any). */
const char *backend_device(void);
/* The backend new models use: the last backend_select_device() chose. */
const lb_backend *backend_current(void);

/* Host↔device mirrors of host arrays. On a unified backend the "device"
 * copy is the host pointer itself and the syncs do nothing. */
void *backend_mirror(const lb_backend *be, void *host, size_t bytes);        /* alloc + upload */
void backend_mirror_free(const lb_backend *be, void *dev, const void *host); /* free if separate */
void backend_sync_up(const lb_backend *be, void *dev, const void *host, size_t bytes);
void backend_sync_down(const lb_backend *be, void *host, const void *dev, size_t bytes);

#endif
