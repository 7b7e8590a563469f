/* rope.h — RoPE inverse frequencies for the scaling schemes Hugging Face
 * configs use (rope_type default, linear, dynamic, yarn, llama3, longrope)
 * and the cos/sin table the forward and backward rotate with (layers.h's
 * rope_forward/rope_backward layout). */
#ifndef LBDPO_ROPE_H
#define LBDPO_ROPE_H

#include "libcore/nn/model.h"

/* f[0 .. head_dim/2) for a sequence whose positions are 0 .. seq_len-1, and
 * the factor cos and sin are multiplied by (*scale; 1 except yarn and
 * longrope). Only longrope depends on seq_len. */
void rope_freqs(const model_config *c, int seq_len, double *f, double *scale);

/* cs [T, head_dim] = scale·[cos(pos·f_i) | sin(pos·f_i)] per token. A
 * sequence starts at every token with position 0 and runs to the next; its
 * length (largest position + 1) picks longrope's short or long factors, so
 * each sequence of a packed batch is computed as transformers computes it
 * alone. Plain RoPE gives exactly layers.c's rope_table. */
void rope_table_cfg(float *cs, const int *pos, int T, const model_config *c);

/* rope_kind_name(): model.h, beside the enum. */

#endif
