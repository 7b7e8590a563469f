/* test_pairs.c — which scored samples of one prompt make pairs
 * (formats/pairsel.c, lbdpo-pairs): best and worst with ties, the strict
 * reward gap, every pair above the gap in rank order. */
#include <criterion/criterion.h>

#include "formats/pairsel.h"

Test(pairsel, best_and_worst_ties)
{
	const double r[] = {0.5, 2, 2, -1, -1, 0};
	cr_expect_eq(pairsel_best(r, 6), 1, "the first of the tied best");
	cr_expect_eq(pairsel_worst(r, 6), 4, "the last of the tied worst");
	const double one[] = {3};
	cr_expect_eq(pairsel_best(one, 1), 0);
	cr_expect_eq(pairsel_worst(one, 1), 0);
	/* all equal: best is the first, worst the last, and no pair */
	const double eq[] = {1, 1, 1};
	cr_expect_eq(pairsel_best(eq, 3), 0);
	cr_expect_eq(pairsel_worst(eq, 3), 2);
	pairsel_pair out[3];
	cr_expect_eq(pairsel_select(eq, 3, PAIRSEL_BEST_WORST, 0, out), 0, "a tie is no preference");
	cr_expect_eq(pairsel_select(eq, 3, PAIRSEL_ALL, 0, out), 0);
}

Test(pairsel, best_worst_gap_is_strict)
{
	const double r[] = {0, 1, 0.25};
	pairsel_pair out[3];
	cr_assert_eq(pairsel_select(r, 3, PAIRSEL_BEST_WORST, 0, out), 1);
	cr_expect_eq(out[0].chosen, 1);
	cr_expect_eq(out[0].rejected, 0);
	cr_expect_eq(pairsel_select(r, 3, PAIRSEL_BEST_WORST, 0.999, out), 1);
	cr_expect_eq(pairsel_select(r, 3, PAIRSEL_BEST_WORST, 1, out), 0, "a gap equal to G is not more than G");
	cr_expect_eq(pairsel_select(r, 1, PAIRSEL_BEST_WORST, 0, out), 0, "one sample: no pair");
	cr_expect_eq(pairsel_select(r, 0, PAIRSEL_ALL, 0, out), 0);
}

Test(pairsel, all_pairs_above_gap_in_rank_order)
{
	/* ranks: 3 (r 3), 1 and 2 (r 2, tied: sample order), 0 (r 1) */
	const double r[] = {1, 2, 2, 3};
	pairsel_pair out[6];
	int n = pairsel_select(r, 4, PAIRSEL_ALL, 0, out);
	/* (3,0) (3,2) (3,1) (1,0) (2,0): the tie 1-2 makes no pair */
	const int want[][2] = {{3, 0}, {3, 2}, {3, 1}, {1, 0}, {2, 0}};
	cr_assert_eq(n, 5);
	for (int i = 0; i < n; i++) {
		cr_expect_eq(out[i].chosen, want[i][0], "pair %d chosen", i);
		cr_expect_eq(out[i].rejected, want[i][1], "pair %d rejected", i);
	}
	/* gap 1: only pairs more than 1 apart */
	n = pairsel_select(r, 4, PAIRSEL_ALL, 1, out);
	cr_assert_eq(n, 1);
	cr_expect_eq(out[0].chosen, 3);
	cr_expect_eq(out[0].rejected, 0);
	/* every chosen reward is above its rejected one by more than the gap */
	const double s[] = {0.3, -2, 5, 0.3, 1e-12, 0};
	pairsel_pair o2[15];
	n = pairsel_select(s, 6, PAIRSEL_ALL, 0, o2);
	cr_expect_eq(n, 14, "15 pairs less the tie 0.3 = 0.3");
	for (int i = 0; i < n; i++)
		cr_expect_gt(s[o2[i].chosen] - s[o2[i].rejected], 0);
}
