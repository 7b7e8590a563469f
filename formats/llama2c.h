/* llama2c.h — llama2.c legacy checkpoints (.bin, "version 0").
 *
 * Layout (all little-endian): 7 int32 header
 *   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 * (vocab_size < 0: the classifier is stored separately, else it is the
 * token embedding), then f32 weights in this order:
 *   token_embedding [V][dim], rms_att [L][dim], wq [L][dim][dim],
 *   wk [L][kv_dim][dim], wv [L][kv_dim][dim], wo [L][dim][dim],
 *   rms_ffn [L][dim], w1 [L][hidden][dim], w2 [L][dim][hidden],
 *   w3 [L][hidden][dim], rms_final [dim],
 *   freq_cis_real [seq_len][head_size/2], freq_cis_imag (same; skipped),
 *   wcls [V][dim] only when unshared.
 * with kv_dim = dim * n_kv_heads / n_heads, head_size = dim / n_heads.
 * The file size must match exactly.
 *
 * Mapping to Hugging Face names: w1 = mlp.gate_proj, w3 = mlp.up_proj,
 * w2 = mlp.down_proj; rms_att = input_layernorm, rms_ffn =
 * post_attention_layernorm. llama2.c rotates interleaved pairs (x[2i],
 * x[2i+1]); HF rotates halves (x[i], x[i + hd/2]), so wq/wk rows are
 * permuted per head at load time (model_permute_llama2c_qk in model.h). The loader itself
 * (model_load on a .bin) is in libcore/nn/model_io.c: formats/ stays free of
 * the model API.
 */
#ifndef LBDPO_LLAMA2C_H
#define LBDPO_LLAMA2C_H

#include <stddef.h>
#include <stdint.h>

#include "formats/modelcfg.h"

#define LLAMA2C_HEADER_BYTES 28

/* Validate the header against the file size; fill cfg (rope_theta 1e4,
 * norm_eps 1e-5, bos 1, eos 2). *shared = classifier shared with the
 * embedding. Returns 0 or -1 with a one-line message in err. */
int llama2c_parse_header(const void *hdr, uint64_t file_size, const char *name, model_config *cfg, int *shared,
			 char *err, size_t errsz);

#endif
