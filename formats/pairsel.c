/* pairsel.c — see pairsel.h. */
#include "formats/pairsel.h"

#include <stdlib.h>

#include "base/util.h"

int pairsel_best(const double *r, int n)
{
	int b = 0;
	for (int i = 1; i < n; i++)
		if (r[i] > r[b])
			b = i;
	return b;
}

int pairsel_worst(const double *r, int n)
{
	int w = 0;
	for (int i = 1; i < n; i++)
		if (r[i] <= r[w])
			w = i;
	return w;
}

/* ord[0..n) in rank order: higher reward first, equal rewards in sample
 * order (an insertion sort: n is a handful of samples) */
static void rank_order(const double *r, int n, int *ord)
{
	for (int i = 0; i < n; i++) {
		int k = i;
		while (k > 0 && r[ord[k - 1]] < r[i])
			ord[k] = ord[k - 1], k--;
		ord[k] = i;
	}
}

int pairsel_select(const double *r, int n, int rule, double gap, pairsel_pair *out)
{
	if (n < 2)
		return 0;
	if (rule == PAIRSEL_BEST_WORST) {
		int b = pairsel_best(r, n), w = pairsel_worst(r, n);
		if (!(r[b] - r[w] > gap))
			return 0;
		out[0] = (pairsel_pair){b, w};
		return 1;
	}
	int *ord = xmalloc((size_t)n * sizeof *ord);
	rank_order(r, n, ord);
	int k = 0;
	for (int a = 0; a < n; a++)
		for (int b = n - 1; b > a; b--) {
			int i = ord[a], j = ord[b];
			if (r[i] - r[j] > gap)
				out[k++] = (pairsel_pair){i, j};
		}
	free(ord);
	return k;
}
