/* cpu.c — CPU features and the OpenBLAS core (see cpu.h). */
#include "libcore/nn/cpu/runtime.h"

#include <cblas.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"
#include "libcore/nn/cpu/gemm_bf16.h"

cpu_features cpu_detect(void)
{
	cpu_features f = {CPU_SSE, 0};
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	f.amd = __builtin_cpu_is("amd");
	if (__builtin_cpu_supports("avx"))
		f.level = CPU_AVX;
	if (f.level == CPU_AVX && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		f.level = CPU_AVX2;
	if (f.level == CPU_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
	    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
	    __builtin_cpu_supports("avx512vl"))
		f.level = CPU_AVX512;
#endif
	return f;
}

/* OpenBLAS 0.3.21's x86-64 cores and the instruction set their kernels use. */
static const struct {
	const char *name;
	int level;
} cores[] = {
	{"Unknown", CPU_SSE},       {"Katmai", CPU_SSE},
	{"Coppermine", CPU_SSE},    {"Northwood", CPU_SSE},
	{"Prescott", CPU_SSE},      {"Banias", CPU_SSE},
	{"Atom", CPU_SSE},          {"Core2", CPU_SSE},
	{"Penryn", CPU_SSE},        {"Dunnington", CPU_SSE},
	{"Nehalem", CPU_SSE},       {"Athlon", CPU_SSE},
	{"Opteron", CPU_SSE},       {"Opteron_SSE3", CPU_SSE},
	{"Barcelona", CPU_SSE},     {"Nano", CPU_SSE},
	{"Sandybridge", CPU_AVX},   {"Bulldozer", CPU_AVX},
	{"Piledriver", CPU_AVX},    {"Steamroller", CPU_AVX},
	{"Haswell", CPU_AVX2},      {"Zen", CPU_AVX2},
	{"Excavator", CPU_AVX2},    {"SkylakeX", CPU_AVX512},
	{"Cooperlake", CPU_AVX512}, {"SapphireRapids", CPU_AVX512},
};

const char *cpu_blas_core_fix(const char *core, cpu_features f)
{
	if (!core)
		return NULL;
	int have = -1;
	for (size_t i = 0; i < sizeof cores / sizeof cores[0]; i++)
		if (strcasecmp(core, cores[i].name) == 0)
			have = cores[i].level;
	if (have < 0 || have >= f.level)
		return NULL;
	switch (f.level) {
	case CPU_AVX512: return "SkylakeX";
	case CPU_AVX2: return f.amd ? "Zen" : "Haswell";
	case CPU_AVX: return "Sandybridge";
	}
	return NULL;
}

int cpu_blas_env_fix(void)
{
	const char *user = getenv("OPENBLAS_CORETYPE");
	if (user && *user)
		return 0;
	const char *core = cpu_blas_core_fix(openblas_get_corename(), cpu_detect());
	return core && setenv("OPENBLAS_CORETYPE", core, 1) == 0;
}

void cpu_blas_describe(char *buf, size_t n)
{
	char cfg[256];
	snprintf(cfg, sizeof cfg, "%s", openblas_get_config());
	/* the config string ends with the core name and MAX_THREADS; keep the version and build */
	char *p = strstr(cfg, " DYNAMIC_ARCH");
	if (p)
		p[sizeof " DYNAMIC_ARCH" - 1] = 0;
	const char *forced = getenv("OPENBLAS_CORETYPE");
	if (forced && !*forced)
		forced = NULL;
	snprintf(buf, n, "%s, core %s%s%s%s, %d threads", cfg, openblas_get_corename(),
		 forced ? " (OPENBLAS_CORETYPE=" : "", forced ? forced : "", forced ? ")" : "",
		 openblas_get_num_threads());
}

const char *cpu_kernel_path(void)
{
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && !defined(LBDPO_NO_CLONES)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("x86-64-v4"))
		return "x86-64-v4";
	if (__builtin_cpu_supports("x86-64-v3"))
		return "x86-64-v3";
	return "baseline";
#elif defined(__AVX512F__)
	return "AVX-512, whole build (-march)"; /* ARCHFLAGS: one path, no clones */
#elif defined(__AVX2__)
	return "AVX2, whole build (-march)";
#else
	return "baseline";
#endif
}

void print_version(const char *prog)
{
	char b[512];
	cpu_blas_describe(b, sizeof b);
	printf("%s lbdpo %s\nBLAS: %s\nkernels: %s\nbf16: %s\n", prog, LBDPO_VERSION, b, cpu_kernel_path(),
	       gemm_bf16_path());
	close_stdout();
}

/* Declared in util.h (every program calls it); here because it is about the
 * CPU and OpenBLAS, and so that util.c links without OpenBLAS (fuzzers). */
void lbdpo_runtime_init(char **argv)
{
	int again = 0;
	if (!getenv("OMP_WAIT_POLICY") && setenv("OMP_WAIT_POLICY", "passive", 1) == 0)
		again = 1;
	/* OpenBLAS's idle threads call sched_yield for 2^28 cycles (≈0.1 s) before
	 * they sleep, so between two matrix products they take turns on the cores
	 * with the threads of the OpenMP kernels. 2^20 cycles (≈0.4 ms) lets them
	 * sleep through the non-GEMM kernels: the LB-DPO step ran 7-10% faster
	 * on 2 cores (README, "CPU kernels"). */
	if (!getenv("OPENBLAS_THREAD_TIMEOUT") && setenv("OPENBLAS_THREAD_TIMEOUT", "20", 1) == 0)
		again = 1;
	if (cpu_blas_env_fix()) /* OpenBLAS on an old core (cpu.h) */
		again = 1;
	if (!again)
		return;
	fflush(NULL);
	execv("/proc/self/exe", argv);
	/* exec failed (no /proc?): carry on with spinning threads and the old core */
}
