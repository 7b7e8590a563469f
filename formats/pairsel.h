/* pairsel.h — which scored samples of one prompt make preference pairs
 * (lbdpo-pairs): the rules, apart from any I/O, so they are tested alone.
 *
 * Rewards r[0..n) of n distinct completions of one prompt, in sample order.
 *   best      the highest reward; among equal ones the first
 *   worst     the lowest reward; among equal ones the last
 *   best-worst one pair (best, worst) when r[best] - r[worst] > gap
 *   all       every pair (i, j) with r[i] - r[j] > gap, ordered by the
 *             chosen's rank (best first), then the rejected's from the
 *             worst up; equal rewards rank in sample order
 * The gap is strict: with gap 0, equal rewards never make a pair (a tie is
 * no preference). Rewards must be finite. */
#ifndef LBDPO_PAIRSEL_H
#define LBDPO_PAIRSEL_H

typedef struct {
	int chosen, rejected; /* indices into r */
} pairsel_pair;

enum { PAIRSEL_BEST_WORST, PAIRSEL_ALL };

int pairsel_best(const double *r, int n);
int pairsel_worst(const double *r, int n);
/* The pairs of rule (PAIRSEL_*) into out (room for n(n-1)/2); their number. */
int pairsel_select(const double *r, int n, int rule, double gap, pairsel_pair *out);

#endif
