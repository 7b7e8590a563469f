/* ref_head.h — CPU references for the head and loss hand-off kernels.
 *
 * On this branch these loops still live inline in model_forward and
 * model_backward (libcore/model.c); the backend-table work moves them into
 * layers.c as lmhead_forward, logsoftmax_rows, ... . Until that lands here,
 * ref_head.c carries verbatim transcriptions of those functions so the GPU
 * harness can compare against them; afterwards the harness calls layers.c
 * and this file goes. */
#ifndef LBDPO_REF_HEAD_H
#define LBDPO_REF_HEAD_H

#include <stdint.h>

#include "libcore/cuda/cuda.h"

void ref_lmhead_forward(float *logits, const float *h, const float *w, int T, int C, int V);
void ref_lmhead_backward(float *dh, float *dw, const float *dz, const float *h, const float *w, int n, int C,
			 int V);
void ref_logsoftmax_rows(float *lse, float *lp, float *ent, const float *logits, const cuda_logit_row *rows,
			 int T, int V);
void ref_seq_logp_sums(double *st, const float *lp, const float *ent, const cuda_logit_row *rows,
		       const int *seq_off, int n_seq);
void ref_logit_grad_rows(float *logits, const float *lse, const int *idx, const double *w, const int32_t *y,
			 int n, int V);
void ref_rows_gather(float *dst, const float *src, const int *idx, int n, int C);
void ref_rows_scatter(float *dst, const float *src, const int *idx, int n, int C);
void ref_rows_compact(float *x, const int *idx, int n, int C);
void ref_pool_forward(float *last, float *mean, const float *x, const int *seq_off, const int *seq_P, int n_seq,
		      int C);
void ref_pool_backward(float *dx, const float *d_last, const float *d_mean, const uint8_t *has_last,
		       const uint8_t *has_mean, const int *seq_off, const int *seq_P, int n_seq, int C);
void ref_kv_append(float *kc, float *vc, const float *qkv, int at, int n, int H, int KV, int hd, int QKV);
void ref_attention_decode(float *out, const float *qkv, const float *K, const float *Vc, int len0, int n, int H,
			  int KV, int hd, int QKV);
int ref_all_finite(const float *x, size_t n);

#endif
