/* backend_cuda.c — the CUDA backend: the table of backend.h on the kernels
 * of libcore/nn/cuda (cuBLAS for the matrix products, one kernel per other
 * operation, each beside its CPU twin of the same name).
 *
 * Device memory is separate (unified = 0): model.c keeps the weights, and
 * engine.c the gradients and AdamW moments, resident in alloc()ed memory;
 * per batch only the index arrays (token ids, positions, attention ranges,
 * logit rows), the RoPE table and the per-row logit weights go up, and the
 * per-sequence sums and pooled states come down (model.c).
 *
 * Not part of liblbdpo.a: the programs of a CUDA build (make CUDA=1) link
 * this object and the libcore/nn/cuda objects, and backend_select_device()
 * (backend_cpu.c) finds them through weak references, so a CPU-only build
 * says cleanly that it has no CUDA backend. tests/sh/test_cuda_emu.sh links
 * the same object against the CPU emulator of tests/gpu/emu.
 */
#include <stdio.h>

#include "libcore/nn/backend.h"
#include "libcore/nn/cuda/cuda.h"
#include "base/util.h"

/* Host-side threads (tokenization, the β head, the loss) stay the CPU's. */
static void cu_set_threads(int n) { lb_backend_cpu.set_threads(n); }

const lb_backend lb_backend_cuda = {
	.name = "cuda",
	.unified = 0,
	.alloc = cuda_alloc,
	.free = cuda_free,
	.upload = cuda_upload,
	.download = cuda_download,
	.memset0 = cuda_memset0,
	.set_threads = cu_set_threads,
	.embed_forward = cuda_embed_forward,
	.embed_backward = cuda_embed_backward,
	.rmsnorm_forward = cuda_rmsnorm_forward,
	.rmsnorm_backward = cuda_rmsnorm_backward,
	.layernorm_forward = cuda_layernorm_forward,
	.layernorm_backward = cuda_layernorm_backward,
	.matmul_forward = cuda_matmul_forward,
	.matmul_backward = cuda_matmul_backward,
	.rope_forward = cuda_rope_forward,
	.rope_backward = cuda_rope_backward,
	.attention_forward = cuda_attention_forward,
	.attention_backward = cuda_attention_backward,
	.swiglu_forward = cuda_swiglu_forward,
	.swiglu_backward = cuda_swiglu_backward,
	.gelu_forward = cuda_gelu_forward,
	.gelu_backward = cuda_gelu_backward,
	.residual_forward = cuda_residual_forward,
	.lmhead_forward = cuda_lmhead_forward,
	.lmhead_forward1 = cuda_lmhead_forward1,
	.lmhead_backward = cuda_lmhead_backward,
	.logsoftmax_rows = cuda_logsoftmax_rows,
	.seq_logp_sums = cuda_seq_logp_sums,
	.logit_grad_rows = cuda_logit_grad_rows,
	.rows_gather = cuda_rows_gather,
	.rows_scatter = cuda_rows_scatter,
	.rows_compact = cuda_rows_compact,
	.pool_forward = cuda_pool_forward,
	.pool_backward = cuda_pool_backward,
	.kv_append = cuda_kv_append,
	.attention_decode = cuda_attention_decode,
	.adamw_update = cuda_adamw_update,
	.sumsq = cuda_sumsq,
	.scale = cuda_scale_inplace,
	.headnorm_forward = cuda_headnorm_forward,
	.headnorm_backward = cuda_headnorm_backward,
	.rope_part_forward = cuda_rope_part_forward,
	.rope_part_backward = cuda_rope_part_backward,
	.gelu_exact_forward = cuda_gelu_exact_forward,
	.gelu_exact_backward = cuda_gelu_exact_backward,
	.rmsnorm_off_forward = cuda_rmsnorm_off_forward,
	.rmsnorm_off_backward = cuda_rmsnorm_off_backward,
	.geglu_forward = cuda_geglu_forward,
	.geglu_backward = cuda_geglu_backward,
	.softcap_forward = cuda_softcap_forward,
	.softcap_backward = cuda_softcap_backward,
	.attention_ext_forward = cuda_attention_ext_forward,
	.attention_ext_backward = cuda_attention_ext_backward,
	.attention_ext_decode = cuda_attention_ext_decode,
	.set_tf32 = cuda_set_tf32,
};

int backend_cuda_probe(char *why, size_t n) { return cuda_probe(why, n); }

const lb_backend *backend_cuda_open(const char *spec, char *desc, size_t n)
{
	int dev = cuda_select(spec); /* dies with one line on a bad spec or no GPU */
	char name[256];
	size_t tot = 0;
	cuda_device_info(name, sizeof name, &tot);
	cuda_set_tf32(0); /* fp32 (results comparable with the CPU backend) until backend_set_tf32(1) */
	snprintf(desc, n, "cuda:%d (%s, %.1f GiB)", dev, name, tot / 1073741824.0);
	return &lb_backend_cuda;
}
