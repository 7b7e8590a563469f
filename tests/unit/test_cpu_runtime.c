/* test_cpu_runtime.c — libcore/nn/cpu/runtime.c: the OpenBLAS core selection (cpu_blas_core_fix) on fake core
 * names and feature sets: old cores are replaced on newer CPUs, good or
 * unknown cores are kept, AMD gets Zen; vexpf against exp(). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "libcore/nn/cpu/runtime.h"
#include "libcore/nn/cpu/vexp.h"

static const cpu_features intel512 = {CPU_AVX512, 0}, intel2 = {CPU_AVX2, 0}, amd2 = {CPU_AVX2, 1},
			  amd512 = {CPU_AVX512, 1}, avx1 = {CPU_AVX, 0}, sse = {CPU_SSE, 0};

static void expect(const char *core, cpu_features f, const char *want)
{
	const char *got = cpu_blas_core_fix(core, f);
	if (!want)
		cr_expect_null(got, "%s on level %d amd %d: got %s, want none", core, f.level, f.amd, got);
	else
		cr_expect(got && strcmp(got, want) == 0, "%s on level %d amd %d: got %s, want %s", core, f.level, f.amd,
			  got ? got : "(none)", want);
}

Test(cpu, fallback_cores_replaced)
{
	expect("Prescott", intel512, "SkylakeX"); /* the Xeon model 207 case of issue 10 */
	expect("Katmai", intel512, "SkylakeX");
	expect("Core2", intel2, "Haswell");
	expect("Nehalem", intel2, "Haswell");
	expect("Barcelona", amd2, "Zen");
	expect("Prescott", amd512, "SkylakeX");
	expect("prescott", intel2, "Haswell"); /* case-insensitive like OPENBLAS_CORETYPE */
	expect("Sandybridge", intel2, "Haswell");
	expect("Haswell", intel512, "SkylakeX");
	expect("Zen", amd512, "SkylakeX");
	expect("Core2", avx1, "Sandybridge");
}

Test(cpu, good_or_unknown_cores_kept)
{
	expect("SkylakeX", intel512, NULL);
	expect("Cooperlake", intel512, NULL);
	expect("Cooperlake", amd512, NULL); /* what 0.3.21 picks on an AMD EPYC Zen 4 */
	expect("SapphireRapids", intel512, NULL);
	expect("Haswell", intel2, NULL);
	expect("Zen", amd2, NULL);
	expect("Prescott", sse, NULL);         /* an SSE-only CPU: the old core is right */
	expect("SkylakeX", intel2, NULL);      /* never downgrade */
	expect("Zen5NextGen", intel512, NULL); /* a newer OpenBLAS's name: trusted */
	expect("", intel512, NULL);
	expect(NULL, intel512, NULL);
}

Test(cpu, detect_is_consistent)
{
	cpu_features f = cpu_detect();
	cr_expect(f.level >= CPU_SSE && f.level <= CPU_AVX512);
	char b[512];
	cpu_blas_describe(b, sizeof b);
	cr_expect(strstr(b, "OpenBLAS") && strstr(b, "core "), "describe: %s", b);
}

Test(cpu, vexpf_accuracy)
{
	double worst = 0, at = 0;
	for (int i = 0; i <= 2000000; i++) {
		float x = -87.0f + 175.0f * (float)i / 2000000.0f;
		double want = exp((double)x), got = vexpf(x);
		double rel = fabs(got - want) / want;
		if (rel > worst)
			worst = rel, at = x;
	}
	cr_expect(worst < 2e-7, "vexpf: max relative error %.3g at x = %.9g", worst, at);
	cr_expect(vexpf(0.0f) == 1.0f);
	cr_expect(vexpf(-1000.0f) < 1.3e-38f && vexpf(-1000.0f) >= 0.0f); /* underflow: tiny, never negative */
	cr_expect(isinf(vexpf(1000.0f)) || vexpf(1000.0f) > 1e38f);
	cr_expect(isnan(vexpf(NAN)));
	/* the same in a vectorized loop (the form the kernels use) */
	float x[1000], y[1000];
	for (int i = 0; i < 1000; i++)
		x[i] = -20.0f + 0.04f * i;
#pragma omp simd
	for (int i = 0; i < 1000; i++)
		y[i] = vexpf(x[i]);
	for (int i = 0; i < 1000; i++)
		cr_expect(fabs(y[i] - exp((double)x[i])) <= 2e-7 * exp((double)x[i]), "x=%g: %g vs %g", x[i], y[i],
			  exp((double)x[i]));
}
