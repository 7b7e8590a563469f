/* llama2c.c — llama2.c legacy .bin loader (see llama2c.h). */
#define _GNU_SOURCE
#include "formats/llama2c.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "formats/hfconfig.h"

int llama2c_parse_header(const void *hdr, uint64_t file_size, const char *name, model_config *cfg, int *shared,
			 char *err, size_t errsz)
{
	int32_t h[7];
	if (file_size < LLAMA2C_HEADER_BYTES) {
		snprintf(err, errsz, "%s: byte offset 0: file too short for a llama2.c header (%llu bytes)", name,
			 (unsigned long long)file_size);
		return -1;
	}
	memcpy(h, hdr, sizeof h);
	static const char *fld[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
	static const int64_t hi[7] = {1 << 16, 1 << 20, 1024, 1 << 12, 1 << 12, 1 << 24, 1 << 24};
	for (int i = 0; i < 7; i++) {
		int64_t v = i == 5 ? llabs((long long)h[i]) : h[i];
		if (v < 1 || v > hi[i]) {
			snprintf(err, errsz, "%s: byte offset %d: header %s = %d is out of range [1, %lld]%s", name,
				 4 * i, fld[i], h[i], (long long)hi[i], i == 5 ? " (absolute value)" : "");
			return -1;
		}
	}
	int dim = h[0], hid = h[1], L = h[2], nh = h[3], nkv = h[4], V = abs(h[5]), T = h[6];
	if (dim % nh || (dim / nh) % 2 || nkv > nh || nh % nkv) {
		snprintf(
			err, errsz,
			"%s: byte offset 12: inconsistent heads (dim %d, n_heads %d, n_kv_heads %d): need dim %% n_heads == 0, "
			"even head size, n_kv_heads dividing n_heads",
			name, dim, nh, nkv);
		return -1;
	}
	*shared = h[5] > 0;
	memset(cfg, 0, sizeof *cfg);
	cfg->arch = ARCH_LLAMA;
	cfg->dim = dim;
	cfg->hidden_dim = hid;
	cfg->n_layers = L;
	cfg->n_heads = nh;
	cfg->n_kv_heads = nkv;
	cfg->head_dim = dim / nh;
	cfg->vocab_size = V;
	cfg->max_seq_len = T;
	cfg->rope_theta = 10000.0f; /* llama2.c's fixed RoPE base */
	cfg->norm_eps = 1e-5f;      /* llama2.c's rmsnorm epsilon */
	cfg->tied_embeddings = *shared;
	cfg->qkv_bias = 0;
	cfg->bos_id = V > 1 ? 1 : -1; /* the Llama 2 sentencepiece convention */
	cfg->eos_id = V > 2 ? 2 : -1;
	char e2[256];
	if (hfconfig_check(cfg, e2, sizeof e2)) {
		snprintf(err, errsz, "%s: byte offset 0: header: %s", name, e2);
		return -1;
	}
	/* Exact size in floats (all terms < 2^40 by the ranges above, so no overflow in u64). */
	uint64_t hs = (uint64_t)(dim / nh), kv = (uint64_t)dim * nkv / nh, D = dim, H = hid;
	uint64_t nf = (uint64_t)V * D + L * (2 * D + D * D + 2 * D * kv + D * D + 3 * D * H) + D + 2 * (T * hs / 2) +
		      (*shared ? 0 : (uint64_t)V * D);
	uint64_t want = LLAMA2C_HEADER_BYTES + 4 * nf;
	if (file_size != want) {
		snprintf(
			err, errsz,
			"%s: byte offset %llu: file size %llu does not match the header (dim %d, hidden %d, layers %d, heads %d/%d, "
			"vocab %d, seq_len %d need %llu bytes)%s",
			name, (unsigned long long)(file_size < want ? file_size : want), (unsigned long long)file_size,
			dim, hid, L, nh, nkv, h[5], T, (unsigned long long)want,
			file_size < want ? ": truncated" : ": trailing bytes");
		return -1;
	}
	return 0;
}
