/* test_rng.c — base/rng.c: splitmix64 gives the published reference stream
 * (seeds, data, permutations and samples depend on it), and what is drawn
 * from it has the promised ranges. */
#include <criterion/criterion.h>
#include <math.h>

#include "base/rng.h"

Test(rng, splitmix64_reference_values)
{
	/* the first outputs of splitmix64 from state 0 (Vigna's splitmix64.c) */
	uint64_t s = 0;
	cr_assert_eq(rng_next(&s), 0xE220A8397B1DCDAFull);
	cr_assert_eq(rng_next(&s), 0x6E789E6AA1B965F4ull);
	cr_assert_eq(rng_next(&s), 0x06C45D188009454Full);
}

Test(rng, uniform_is_the_top_53_bits)
{
	uint64_t s = 0, t = 0;
	cr_assert_eq(rng_unif(&s), (double)(0xE220A8397B1DCDAFull >> 11) / 9007199254740992.0);
	cr_assert_eq(rng_below(&t, 1000), (int)(0xE220A8397B1DCDAFull % 1000));
	double lo = 1, hi = 0;
	for (int i = 0; i < 100000; i++) {
		double u = rng_unif(&s);
		lo = fmin(lo, u), hi = fmax(hi, u);
		cr_assert(u >= 0 && u < 1);
		int k = rng_below(&s, 7);
		cr_assert(k >= 0 && k < 7);
	}
	cr_assert(lo < 1e-3 && hi > 1 - 1e-3);
}

Test(rng, normal_has_mean_0_variance_1)
{
	uint64_t s = 42;
	double m = 0, v = 0;
	const int n = 200000;
	for (int i = 0; i < n; i++) {
		double x = rng_normal(&s);
		cr_assert(isfinite(x));
		m += x, v += x * x;
	}
	m /= n, v = v / n - m * m;
	cr_assert(fabs(m) < 0.01, "mean %g", m);
	cr_assert(fabs(v - 1) < 0.02, "variance %g", v);
}

Test(rng, xorshift_never_sticks_at_zero)
{
	uint64_t s = 0;
	double u = rng_xs_unif(&s);
	cr_assert(s != 0 && u >= 0 && u < 1);
}
