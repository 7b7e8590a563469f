/* backend_cpu.c — the CPU backend: host memory, the kernels of layers.c
 * (OpenMP loops and OpenBLAS sgemm) and AdamW of adamw.c. */
#include "libcore/backend.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "libcore/nn/gemm_bf16.h"

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

/* ------------------------------------------------- selection and mirrors */

static const lb_backend *current = &lb_backend_cpu;
static char device_base[300] = "cpu"; /* as the backend describes itself */
static char device_desc[330] = "cpu"; /* that, plus " tf32" or " bf16" when it applies */
static int want_tf32;

/* The current backend's precision from want_tf32, and the description. */
static void apply_tf32(void)
{
	const int on = want_tf32 && current->set_tf32;
	if (current->set_tf32)
		current->set_tf32(want_tf32);
	snprintf(device_desc, sizeof device_desc, "%s%s%s", device_base, on ? " tf32" : "",
		 gemm_bf16_on() && current == &lb_backend_cpu ? " bf16" : "");
}

void backend_set_tf32(int on)
{
	want_tf32 = on != 0;
	apply_tf32();
}

int backend_tf32(void) { return want_tf32; }

/* Defined only when backend_cuda.o is linked (a CUDA build). */
extern const lb_backend lb_backend_cuda __attribute__((weak));
int backend_cuda_probe(char *why, size_t n) __attribute__((weak));
const lb_backend *backend_cuda_open(const char *spec, char *desc, size_t n) __attribute__((weak));

const char *backend_device(void) { return device_desc; }

int backend_opts_parse(backend_opts *o, int key, const char *arg)
{
	switch (key) {
	case BACKEND_KEY_DEVICE: o->device = arg; return 1;
	case BACKEND_KEY_TF32: o->tf32 = 1; return 1;
	case BACKEND_KEY_BF16: o->dtype = BACKEND_BF16; return 1;
	case BACKEND_KEY_DTYPE:
		if (!strcmp(arg, "fp32") || !strcmp(arg, "float32"))
			o->dtype = BACKEND_FP32;
		else if (!strcmp(arg, "bf16") || !strcmp(arg, "bfloat16"))
			o->dtype = BACKEND_BF16;
		else if (!strcmp(arg, "auto"))
			o->dtype = BACKEND_AUTO;
		else
			die_usage("--dtype %s: expected fp32, bf16 or auto", arg);
		return 1;
	case BACKEND_KEY_THREADS: o->threads = (int)parse_long("--threads", arg, 1, 4096); return 1;
	}
	return 0;
}

void backend_opts_apply(const backend_opts *o)
{
	backend_set_tf32(o->tf32);
	backend_select_device(o->device);
	backend_set_dtype(o->dtype);
	if (o->threads > 0)
		current->set_threads(o->threads);
}

const char *backend_select_device(const char *spec)
{
	char why[256];
	const int have_cuda = backend_cuda_open != NULL;
	if (!spec) /* the default: the GPU when there is one */
		spec = have_cuda && backend_cuda_probe(why, sizeof why) > 0 ? "cuda" : "cpu";
	if (!strcmp(spec, "cpu")) {
		current = &lb_backend_cpu;
		snprintf(device_base, sizeof device_base, "cpu");
	} else if (!strncmp(spec, "cuda", 4) && (!spec[4] || spec[4] == ':')) {
		if (!have_cuda)
			die("--device %s: this build has no CUDA backend (build with make CUDA=1)", spec);
		current = backend_cuda_open(spec, device_base, sizeof device_base);
	} else {
		die_usage("--device %s: expected cpu, cuda or cuda:N", spec);
	}
	apply_tf32();
	lbdpo_run_device = device_desc;
	return device_desc;
}

int backend_set_dtype(int dtype)
{
	const char *why = NULL;
	if (dtype == BACKEND_FP32)
		why = "";
	else if (current != &lb_backend_cpu)
		why = "the CUDA backend computes in fp32 here (bf16 is the CPU backend's; --tf32 is the GPU's "
		      "reduced precision)";
	else if (!gemm_bf16_ok())
		why = gemm_bf16_path();
	if (why && *why) {
		if (dtype == BACKEND_BF16)
			die("--dtype bf16: no bf16 matrix products: %s", why);
		warning("--dtype auto: running fp32: %s", why);
	}
	gemm_bf16_set(!why);
	apply_tf32();
	return !why;
}

const lb_backend *backend_current(void) { return current; }

int backend_select(const char *name)
{
	if (!strcmp(name, "cpu")) {
		current = &lb_backend_cpu;
		return 0;
	}
	return -1;
}

void *backend_mirror(const lb_backend *be, void *host, size_t bytes)
{
	if (be->unified)
		return host;
	void *d = be->alloc(bytes);
	be->upload(d, host, bytes);
	return d;
}

void backend_mirror_free(const lb_backend *be, void *dev, const void *host)
{
	if (dev && dev != host)
		be->free(dev);
}

void backend_sync_up(const lb_backend *be, void *dev, const void *host, size_t bytes)
{
	if (dev != host)
		be->upload(dev, host, bytes);
}

void backend_sync_down(const lb_backend *be, void *host, const void *dev, size_t bytes)
{
	if (dev != host)
		be->download(host, dev, bytes);
}
