/* test_dist.c — the plain (no-MPI) build of libcore/dist/dist.c: one rank, every
 * operation the identity; started by mpirun with several ranks it refuses
 * to run (N copies would each do the whole job). The MPI build is tested
 * under mpirun by tests/sh/test_mpi.sh. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "libcore/dist/dist.h"
#include "tests/unit/expect_die.h"

Test(dist, one_rank_identity)
{
	unsetenv("OMPI_COMM_WORLD_SIZE");
	unsetenv("PMI_SIZE");
	int argc = 1;
	char *args[] = {"test", NULL}, **argv = args;
	dist_init(&argc, &argv);
	cr_assert_eq(dist_rank(), 0);
	cr_assert_eq(dist_size(), 1);
	cr_assert_eq(dist_have_mpi(), 0);
	float f[3] = {1.5f, -2, 3};
	double d[2] = {0.25, 1e300};
	dist_allreduce_sum_f32(f, 3);
	dist_allreduce_sum_f64(d, 2);
	dist_allreduce_min_f64(d, 2);
	cr_assert(f[0] == 1.5f && f[1] == -2 && f[2] == 3);
	cr_assert(d[0] == 0.25 && d[1] == 1e300);
	char b[4] = "abc";
	dist_bcast(b, 4, 0);
	cr_assert_str_eq(b, "abc");
	size_t lens[1] = {99};
	char *all = dist_gather_bytes("hello", 5, lens);
	cr_assert_eq(lens[0], 5);
	cr_assert(all && !memcmp(all, "hello", 5));
	free(all);
	all = dist_gather_bytes(NULL, 0, lens);
	cr_assert(all && lens[0] == 0);
	free(all);
	dist_barrier();
	dist_finalize();
}

Test(dist, refuses_several_ranks)
{
	setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
	unsetenv("OMPI_COMM_WORLD_RANK"); /* rank 0: the one that says why */
	unsetenv("PMI_RANK");
	int argc = 1;
	char *args[] = {"test", NULL}, **argv = args;
	EXPECT_DIE(1, "error: started with 2 MPI ranks, but this program was built without MPI",
		   dist_init(&argc, &argv));
}
