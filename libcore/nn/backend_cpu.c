/* backend_cpu.c — the CPU backend's table: host memory and the kernels of
 * cpu/ (OpenMP loops and OpenBLAS sgemm), one file per cuda/ twin. The
 * registry that picks a backend is backend.c. */
#include "libcore/nn/backend.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static void *cpu_alloc(size_t bytes) { return xmalloc(bytes ? bytes : 1); }
static void cpu_free(void *d) { free(d); }
static void cpu_copy(void *dst, const void *src, size_t bytes)
{
	if (dst != src && bytes)
		memcpy(dst, src, bytes);
}
static void cpu_memset0(void *d, size_t bytes) { memset(d, 0, bytes); }

static void cpu_set_threads(int n)
{
	if (n <= 0)
		return;
	omp_set_num_threads(n);
	openblas_set_num_threads(n);
}

const lb_backend lb_backend_cpu = {
	.name = "cpu",
	.unified = 1,
	.alloc = cpu_alloc,
	.free = cpu_free,
	.upload = cpu_copy,
	.download = cpu_copy,
	.memset0 = cpu_memset0,
	.set_threads = cpu_set_threads,
	.embed_forward = embed_forward,
	.embed_backward = embed_backward,
	.rmsnorm_forward = rmsnorm_forward,
	.rmsnorm_backward = rmsnorm_backward,
	.layernorm_forward = layernorm_forward,
	.layernorm_backward = layernorm_backward,
	.matmul_forward = matmul_forward,
	.matmul_backward = matmul_backward,
	.rope_forward = rope_forward,
	.rope_backward = rope_backward,
	.attention_forward = attention_forward,
	.attention_backward = attention_backward,
	.swiglu_forward = swiglu_forward,
	.swiglu_backward = swiglu_backward,
	.gelu_forward = gelu_forward,
	.gelu_backward = gelu_backward,
	.residual_forward = residual_forward,
	.lmhead_forward = lmhead_forward,
	.lmhead_forward1 = lmhead_forward1,
	.lmhead_backward = lmhead_backward,
	.logsoftmax_rows = logsoftmax_rows,
	.seq_logp_sums = seq_logp_sums,
	.logit_grad_rows = logit_grad_rows,
	.rows_gather = rows_gather,
	.rows_scatter = rows_scatter,
	.rows_compact = rows_compact,
	.pool_forward = pool_forward,
	.pool_backward = pool_backward,
	.kv_append = kv_append,
	.attention_decode = attention_decode,
	.adamw_update = adamw_update,
	.sumsq = sumsq,
	.scale = scale_inplace,
	.headnorm_forward = headnorm_forward,
	.headnorm_backward = headnorm_backward,
	.rope_part_forward = rope_part_forward,
	.rope_part_backward = rope_part_backward,
	.gelu_exact_forward = gelu_exact_forward,
	.gelu_exact_backward = gelu_exact_backward,
	.rmsnorm_off_forward = rmsnorm_off_forward,
	.rmsnorm_off_backward = rmsnorm_off_backward,
	.geglu_forward = geglu_forward,
	.geglu_backward = geglu_backward,
	.softcap_forward = softcap_forward,
	.softcap_backward = softcap_backward,
	.attention_ext_forward = attention_ext_forward,
	.attention_ext_backward = attention_ext_backward,
	.attention_ext_decode = attention_ext_decode,
	.set_tf32 = NULL, /* OpenBLAS sgemm: fp32 always, --tf32 changes nothing */
};
