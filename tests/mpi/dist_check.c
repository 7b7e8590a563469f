/* dist_check — the MPI build of libcore/dist/dist.c under mpirun (tests/sh/test_mpi.sh):
 *   dist_check             every operation against what it must give; rank 0
 *                          prints "dist_check: N ranks ok"
 *   dist_check die R       rank R dies (die()) while the others wait in an
 *                          all-reduce: the job must end with its error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libcore/dist/dist.h"
#include "base/util.h"

#define CHECK(c, ...)                                                                                                  \
	do {                                                                                                           \
		if (!(c))                                                                                              \
			dist_abort(1, __VA_ARGS__);                                                                    \
	} while (0)

int main(int argc, char **argv)
{
	set_progname("dist_check");
	dist_init(&argc, &argv);
	int rank = dist_rank(), n = dist_size();
	CHECK(dist_have_mpi(), "not the MPI build");
	CHECK(rank >= 0 && rank < n, "rank %d of %d", rank, n);
	if (argc == 3 && !strcmp(argv[1], "die")) {
		if (rank == atoi(argv[2]))
			die("rank %d failing on purpose", rank);
		double x = 1;
		dist_allreduce_sum_f64(&x, 1); /* never completes: the dead rank is missing */
		dist_finalize();
		return 0;
	}

	/* Sums: integers, exact in both types; every rank gets the same result. */
	enum { K = 1000 };
	double d[K];
	float f[K];
	for (int i = 0; i < K; i++)
		d[i] = f[i] = (float)(rank + 1) * (float)i;
	dist_allreduce_sum_f64(d, K);
	dist_allreduce_sum_f32(f, K);
	double tri = n * (n + 1) / 2.0;
	for (int i = 0; i < K; i++) {
		CHECK(d[i] == tri * i, "allreduce f64[%d] = %g, want %g", i, d[i], tri * i);
		CHECK(f[i] == (float)(tri * i), "allreduce f32[%d] = %g, want %g", i, f[i], tri * i);
	}

	/* Minimum, and a maximum through negation. */
	double mm[2] = {10.0 - rank, -(10.0 + rank)};
	dist_allreduce_min_f64(mm, 2);
	CHECK(mm[0] == 11.0 - n && -mm[1] == 9.0 + n, "min %g / max %g with %d ranks", mm[0], -mm[1], n);

	/* Broadcast from the last rank. */
	unsigned char b[777];
	for (int i = 0; i < (int)sizeof b; i++)
		b[i] = rank == n - 1 ? (unsigned char)(i * 7 + 3) : 0;
	dist_bcast(b, sizeof b, n - 1);
	for (int i = 0; i < (int)sizeof b; i++)
		CHECK(b[i] == (unsigned char)(i * 7 + 3), "bcast byte %d = %d", i, b[i]);

	/* Ordered gather of variable lengths; rank 1 sends nothing. */
	size_t len = rank == 1 ? 0 : (size_t)(1000 * rank + 13);
	unsigned char *mine = xmalloc(len + 1);
	for (size_t i = 0; i < len; i++)
		mine[i] = (unsigned char)(rank * 31 + i);
	size_t *lens = xcalloc(n, sizeof *lens);
	unsigned char *all = dist_gather_bytes(mine, len, lens);
	if (rank == 0) {
		const unsigned char *p = all;
		for (int r = 0; r < n; r++) {
			size_t want = r == 1 ? 0 : (size_t)(1000 * r + 13);
			CHECK(lens[r] == want, "gather: rank %d sent %zu bytes, want %zu", r, lens[r], want);
			for (size_t i = 0; i < want; i++)
				CHECK(p[i] == (unsigned char)(r * 31 + i), "gather: rank %d byte %zu", r, i);
			p += want;
		}
	} else
		CHECK(!all, "gather returned data on rank %d", rank);
	free(all);
	free(lens);
	free(mine);
	dist_barrier();
	if (rank == 0)
		printf("dist_check: %d ranks ok\n", n);
	close_stdout();
	dist_finalize();
	return 0;
}
