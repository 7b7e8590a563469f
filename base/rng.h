/* rng.h — the one deterministic random number generator: splitmix64
 * (Steele, Lea & Flood 2014), small, fast and the same on every machine, so
 * a seed gives the same model, data, permutation and samples everywhere.
 * The state is one uint64_t the caller owns (seeded with any value). */
#ifndef LBDPO_RNG_H
#define LBDPO_RNG_H

#include <stdint.h>

/* splitmix64's step and output function: the state after k steps from s is
 * s + k·RNG_GAMMA, and its output rng_mix of that, so a loop can draw its
 * i-th number without the steps before (libcore/nn/cpu/lora.c's dropout). */
#define RNG_GAMMA 0x9E3779B97F4A7C15ull
static inline uint64_t rng_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}
/* The next 64 random bits. */
uint64_t rng_next(uint64_t *s);
/* Uniform in [0, 1): the top 53 bits of rng_next. */
double rng_unif(uint64_t *s);
/* Uniform integer in [0, n), n > 0 (rng_next % n: the bias is below 2^-40
 * for the n used here). */
int rng_below(uint64_t *s, int n);
/* One Box–Muller draw from two rng_next: *r = sqrt(-2 ln u1), u1 in (0, 1],
 * and *a = 2π u2, u2 in [0, 1); r cos a and r sin a are independent N(0, 1).
 * Given apart so each caller keeps its own order of multiplication. */
void rng_polar(uint64_t *s, double *r, double *a);
/* One N(0, 1) number: r cos a of one rng_polar draw. */
double rng_normal(uint64_t *s);

/* xorshift64* uniform in [0, 1) (a state of 0 starts from a fixed one): the
 * generator of beta-DPO's data selection, kept apart from splitmix64 because
 * checkpoints carry its state and resumed runs must draw the same stream. */
double rng_xs_unif(uint64_t *s);

#endif
