/* gemm_bf16.c — bf16 matrix products through oneDNN's matmul primitive
 * (gemm_bf16.h). Without LBDPO_DNNL (built without libdnnl-dev) only the
 * conversions and a gemm_bf16_path() saying so are compiled. */
#include "libcore/nn/cpu/gemm_bf16.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "libcore/nn/cpu/runtime.h"

LBDPO_KERNEL void bf16_from_f32(uint16_t *dst, const float *src, size_t n)
{
	/* Round to nearest even on the bit pattern: add 0x7fff plus the lowest
	 * kept bit, keep the upper half. A NaN keeps its sign and gets a quiet
	 * bit (the addition could carry it into an infinity). */
#pragma omp parallel for schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &src[i], 4);
		uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
		uint32_t q = (u >> 16) | 0x40u;
		dst[i] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? q : r);
	}
}

LBDPO_KERNEL void bf16_to_f32(float *dst, const uint16_t *src, size_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
	for (size_t i = 0; i < n; i++) {
		uint32_t u = (uint32_t)src[i] << 16;
		memcpy(&dst[i], &u, 4);
	}
}

static int bf16_on;

void gemm_bf16_set(int on) { bf16_on = on != 0; }
int gemm_bf16_on(void) { return bf16_on; }

void gemm_rm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
	     float *C, int ldc)
{
	if (bf16_on && M >= GEMM_BF16_MIN && N >= GEMM_BF16_MIN && K >= GEMM_BF16_MIN)
		gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, beta != 0.0f, C, ldc);
	else
		cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
			    1.0f, A, lda, B, ldb, beta, C, ldc);
}

#ifdef LBDPO_DNNL
#include <oneapi/dnnl/dnnl.h>

/* rows × cols of src (row stride ld) into dst packed (row stride cols). */
static void convert_rows(uint16_t *dst, const float *src, int rows, int cols, int ld)
{
	if (ld == cols) {
		bf16_from_f32(dst, src, (size_t)rows * cols);
		return;
	}
#pragma omp parallel for schedule(static)
	for (int r = 0; r < rows; r++)
		bf16_from_f32(dst + (size_t)r * cols, src + (size_t)r * ld, (size_t)cols);
}

static int bf16_state = -1; /* -1 unknown, 0 none, 1 AVX512-BF16, 2 AMX */
static char bf16_desc[160];
static dnnl_engine_t eng;
static dnnl_stream_t strm;

int gemm_bf16_isa_path(unsigned isa)
{
	/* dnnl_cpu_isa_t's bit sets nest: a path is there when all of its bits
	 * are (AMX's set holds AVX512-BF16's). */
	if ((isa & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx)
		return 2;
	return (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
}

void gemm_bf16_describe(char *buf, size_t n, int path, const char *lib, const char *cap)
{
	if (path)
		snprintf(buf, n, "%s (%s)", path == 2 ? "AMX" : "AVX512-BF16", lib);
	else if (cap)
		snprintf(buf, n, "none (%.60s rules out AVX512-BF16 and AMX; %s)", cap, lib);
	else
		snprintf(buf, n, "none (this CPU has neither AVX512-BF16 nor AMX; %s)", lib);
}

static void bf16_probe(void)
{
	if (bf16_state >= 0)
		return;
	const dnnl_version_t *v = dnnl_version();
	char lib[48];
	snprintf(lib, sizeof lib, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
	/* The ISA oneDNN will use: the CPU's (AMX only where the kernel grants
	 * the tile state), capped by ONEDNN_MAX_CPU_ISA or DNNL_MAX_CPU_ISA. */
	bf16_state = gemm_bf16_isa_path((unsigned)dnnl_get_effective_cpu_isa());
	char cap[64] = "";
	for (const char *const *e = (const char *const[]){"ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", NULL}; *e; e++)
		if (!cap[0] && getenv(*e))
			snprintf(cap, sizeof cap, "%s=%.40s", *e, getenv(*e));
	if (bf16_state && (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success ||
			   dnnl_stream_create(&strm, eng, dnnl_stream_default_flags) != dnnl_success))
		bf16_state = 0, snprintf(bf16_desc, sizeof bf16_desc, "none (%s: no CPU engine)", lib);
	else
		gemm_bf16_describe(bf16_desc, sizeof bf16_desc, bf16_state, lib, cap[0] ? cap : NULL);
}

int gemm_bf16_ok(void)
{
	bf16_probe();
	return bf16_state > 0;
}

const char *gemm_bf16_path(void)
{
	bf16_probe();
	return bf16_desc;
}

/* One matmul primitive per shape and layout, with its three memory objects
 * (their data pointers set at each call). A model has a handful of shapes
 * per token count; the table is replaced round robin when it is full. */
typedef struct {
	int ta, tb, M, N, K, ldc, acc;
	dnnl_primitive_t prim;
	dnnl_memory_t a, b, c, scratch;
	size_t scratch_bytes;
} mm_entry;
enum { MM_CACHE = 64 };
static mm_entry cache[MM_CACHE];
static int cache_n, cache_next;

static void dnnl_check(dnnl_status_t s, const char *what)
{
	if (s != dnnl_success)
		die("oneDNN: %s failed (status %d)", what, (int)s);
}

static mm_entry *mm_get(int ta, int tb, int M, int N, int K, int ldc, int acc)
{
	for (int i = 0; i < cache_n; i++) {
		mm_entry *e = &cache[i];
		if (e->ta == ta && e->tb == tb && e->M == M && e->N == N && e->K == K && e->ldc == ldc && e->acc == acc)
			return e;
	}
	mm_entry *e;
	if (cache_n < MM_CACHE) {
		e = &cache[cache_n++];
	} else {
		e = &cache[cache_next];
		cache_next = (cache_next + 1) % MM_CACHE;
		dnnl_primitive_destroy(e->prim);
		dnnl_memory_destroy(e->a);
		dnnl_memory_destroy(e->b);
		dnnl_memory_destroy(e->c);
		dnnl_memory_destroy(e->scratch);
	}
	*e = (mm_entry){ta, tb, M, N, K, ldc, acc, NULL, NULL, NULL, NULL, NULL, 0};
	/* The bf16 copies are packed: A as [M,K] (or [K,M] when transposed),
	 * B as [K,N] (or [N,K]); the strides tell oneDNN which. */
	dnnl_memory_desc_t amd, bmd, cmd;
	dnnl_dims_t ad = {M, K}, bd = {K, N}, cd = {M, N};
	dnnl_dims_t as = {ta ? 1 : K, ta ? M : 1}, bs = {tb ? 1 : N, tb ? K : 1}, cs = {ldc, 1};
	dnnl_check(dnnl_memory_desc_init_by_strides(&amd, 2, ad, dnnl_bf16, as), "memory desc");
	dnnl_check(dnnl_memory_desc_init_by_strides(&bmd, 2, bd, dnnl_bf16, bs), "memory desc");
	dnnl_check(dnnl_memory_desc_init_by_strides(&cmd, 2, cd, dnnl_f32, cs), "memory desc");
	dnnl_matmul_desc_t md;
	dnnl_check(dnnl_matmul_desc_init(&md, &amd, &bmd, NULL, &cmd), "matmul desc");
	dnnl_primitive_attr_t attr;
	dnnl_check(dnnl_primitive_attr_create(&attr), "attr");
	/* our scratchpad, kept: the library's own was allocated and freed at
	 * every call (page faults and munmap: 7% of a bf16 step) */
	dnnl_check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode");
	if (acc) { /* C += A·B: a sum post-op */
		dnnl_post_ops_t po;
		dnnl_check(dnnl_post_ops_create(&po), "post-ops");
		dnnl_check(dnnl_post_ops_append_sum(po, 1.0f), "sum post-op");
		dnnl_check(dnnl_primitive_attr_set_post_ops(attr, po), "post-ops");
		dnnl_post_ops_destroy(po);
	}
	dnnl_primitive_desc_t pd;
	dnnl_check(dnnl_primitive_desc_create(&pd, &md, attr, eng, NULL), "matmul primitive desc");
	dnnl_primitive_attr_destroy(attr);
	dnnl_check(dnnl_primitive_create(&e->prim, pd), "matmul primitive");
	const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
	dnnl_check(dnnl_memory_create(&e->scratch, smd, eng, DNNL_MEMORY_NONE), "memory");
	e->scratch_bytes = dnnl_memory_desc_get_size(smd);
	dnnl_primitive_desc_destroy(pd);
	dnnl_check(dnnl_memory_create(&e->a, &amd, eng, DNNL_MEMORY_NONE), "memory");
	dnnl_check(dnnl_memory_create(&e->b, &bmd, eng, DNNL_MEMORY_NONE), "memory");
	dnnl_check(dnnl_memory_create(&e->c, &cmd, eng, DNNL_MEMORY_NONE), "memory");
	return e;
}

/* Scratch for the bf16 copies and oneDNN's scratchpad, grown as needed
 * (the callers run one product at a time; each is threaded inside). */
static uint16_t *buf_a, *buf_b, *buf_s;
static size_t cap_a, cap_b, cap_s;

static uint16_t *grow(uint16_t **p, size_t *cap, size_t n)
{
	if (n > *cap) { /* 64-byte aligned: whole cache lines for oneDNN's kernels */
		free(*p);
		size_t bytes = (n * sizeof **p + 63) / 64 * 64;
		if (!(*p = aligned_alloc(64, bytes)))
			die("out of memory: asked for %zu bytes (bf16 scratch)", bytes);
		*cap = bytes / sizeof **p;
	}
	return *p;
}

void gemm_bf16(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate,
	       float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	if (K <= 0) {
		if (!accumulate)
			for (int i = 0; i < M; i++)
				memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof *C);
		return;
	}
	uint16_t *a = grow(&buf_a, &cap_a, (size_t)M * K);
	uint16_t *b = grow(&buf_b, &cap_b, (size_t)K * N);
	if (ta)
		convert_rows(a, A, K, M, lda);
	else
		convert_rows(a, A, M, K, lda);
	if (tb)
		convert_rows(b, B, N, K, ldb);
	else
		convert_rows(b, B, K, N, ldb);
	mm_entry *e = mm_get(ta, tb, M, N, K, ldc, accumulate != 0);
	uint16_t *sp = grow(&buf_s, &cap_s, e->scratch_bytes / 2 + 32);
	dnnl_check(dnnl_memory_set_data_handle(e->a, a), "set handle");
	dnnl_check(dnnl_memory_set_data_handle(e->b, b), "set handle");
	dnnl_check(dnnl_memory_set_data_handle(e->c, C), "set handle");
	dnnl_check(dnnl_memory_set_data_handle(e->scratch, sp), "set handle");
	dnnl_exec_arg_t args[4] = {
		{DNNL_ARG_SRC, e->a},
		{DNNL_ARG_WEIGHTS, e->b},
		{DNNL_ARG_DST, e->c},
		{DNNL_ARG_SCRATCHPAD, e->scratch},
	};
	dnnl_check(dnnl_primitive_execute(e->prim, strm, 4, args), "matmul");
	dnnl_check(dnnl_stream_wait(strm), "stream wait");
}

#else /* built without oneDNN */

int gemm_bf16_isa_path(unsigned isa) { return (void)isa, 0; }

void gemm_bf16_describe(char *buf, size_t n, int path, const char *lib, const char *cap)
{
	(void)path, (void)lib, (void)cap;
	snprintf(buf, n, "%s", gemm_bf16_path());
}

int gemm_bf16_ok(void) { return 0; }

const char *gemm_bf16_path(void) { return "none (built without oneDNN: apt-get install libdnnl-dev, rebuild)"; }

void gemm_bf16(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate,
	       float *C, int ldc)
{
	(void)ta, (void)tb, (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb, (void)accumulate,
		(void)C, (void)ldc;
	die("bf16 matrix products: %s", gemm_bf16_path());
}

#endif
