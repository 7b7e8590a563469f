/* rng.c — splitmix64 and what is drawn from it (rng.h). */
#include "base/rng.h"

#include <math.h>

uint64_t rng_next(uint64_t *s) { return rng_mix(*s += RNG_GAMMA); }

double rng_unif(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

int rng_below(uint64_t *s, int n) { return (int)(rng_next(s) % (uint64_t)n); }

void rng_polar(uint64_t *s, double *r, double *a)
{
	double u1 = ((rng_next(s) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1]: log(u1) is finite */
	double u2 = (rng_next(s) >> 11) * 0x1.0p-53;
	*r = sqrt(-2.0 * log(u1));
	*a = 2 * M_PI * u2;
}

double rng_normal(uint64_t *s)
{
	double r, a;
	rng_polar(s, &r, &a);
	return r * cos(a);
}

double rng_xs_unif(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;
}
