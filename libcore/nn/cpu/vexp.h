/* vexp.h — exp(x) that the compiler can vectorize.
 *
 * glibc's expf is a function call per element, so a loop of expf under
 * `omp simd` stays scalar (libmvec is used only with -ffast-math). This one
 * is inline arithmetic (Cephes expf): x = n·ln2 + r, |r| ≤ ln2/2,
 *   e^r ≈ 1 + r + r²·P(r)  (degree-5 minimax P),   e^x = 2^n·e^r,
 * with n rounded by the 1.5·2²³ trick and 2^n built in the exponent bits.
 * Relative error ≤ 2e-7 (tests/unit/test_cpu.c checks against exp()) for
 * x in [−87.3, 88.3]; below, the result is 2^-126 instead of the tiny or
 * zero exact value, above, 2^127·e^r instead of inf; NaN stays NaN. */
#ifndef LBDPO_VEXP_H
#define LBDPO_VEXP_H

#include <stdint.h>
#include <string.h>

static inline float vexpf(float x)
{
	x = x < -87.3f ? -87.3f : x;
	x = x > 88.3f ? 88.3f : x;
	const float big = 12582912.0f; /* 1.5·2²³: adding it rounds to an integer */
	float n = (x * 1.44269504088896341f + big) - big;
	float r = x - n * 0.693359375f - n * -2.12194440e-4f; /* ln2 in two parts */
	float p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	float y = p * r * r + r + 1.0f;
	uint32_t b = (uint32_t)((int32_t)n + 127) << 23;
	float s;
	memcpy(&s, &b, sizeof s);
	return y * s;
}

#endif
