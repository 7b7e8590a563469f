/* dist.h — the communication layer for running one program as N cooperating
 * processes ("ranks") under mpirun. The only file that calls MPI is dist.c.
 *
 * Two builds of dist.c exist (Makefile): the MPI one (compiled with mpicc and
 * -DLBDPO_MPI, linked into the programs that use it when mpicc is found) and
 * the plain one, where size is 1, rank is 0 and every operation is the
 * identity. Callers are written once for both.
 *
 * Faults: MPI's default error handler (MPI_ERRORS_ARE_FATAL) stays in place,
 * so a failed communication ends the whole job. A rank that dies (die(),
 * a crash, SIGKILL) exits without MPI_Finalize; mpirun then terminates every
 * other rank and exits nonzero. Only rank 0 writes outputs, through util.h's
 * temporary-and-rename files, so a killed job never leaves a partial output.
 */
#ifndef LBDPO_DIST_H
#define LBDPO_DIST_H

#include <stddef.h>

#include "base/util.h"

/* Initialize (MPI_Init when started by mpirun; a singleton otherwise).
 * Call after lbdpo_runtime_init() (it may re-execute the program) and after
 * set_progname(). On ranks other than 0 of a multi-rank job the program name
 * in messages becomes "prog[rank R]". In the plain build, started by mpirun
 * with more than one rank, dies with a message saying the program was built
 * without MPI (instead of N copies each doing the whole job). */
void dist_init(int *argc, char ***argv);
/* MPI_Finalize; call once at the end of a successful run. */
void dist_finalize(void);
int dist_rank(void);
int dist_size(void);
/* 1 if this program was built with MPI. */
int dist_have_mpi(void);
/* The --help lines of the programs whose ranks split the records
 * (lbdpo-logprob, lbdpo-refcache): what mpirun does and whether this build
 * has MPI. */
const char *dist_help_text(void);

/* x[i] <- sum over ranks of x[i], the same result on every rank. */
void dist_allreduce_sum_f32(float *x, size_t n);
void dist_allreduce_sum_f64(double *x, size_t n);
/* x[i] <- minimum over ranks of x[i] (a maximum: negate before and after). */
void dist_allreduce_min_f64(double *x, size_t n);
/* x[n] floats in backend be's memory (alloc()ed): sums over ranks. On a
 * unified backend (the CPU) that is dist_allreduce_sum_f32. On the CUDA
 * backend of an MPI + CUDA build with NCCL (Makefile): ncclAllReduce on
 * the device buffer, through a communicator made on the first call
 * (ncclGetUniqueId on rank 0, MPI_Bcast, ncclCommInitRank on the device
 * each rank selected). Else, or when NCCL is turned off (LBDPO_NCCL=0),
 * some rank's gradient is not on a CUDA device, or the set-up fails on any
 * rank (a warning says why), through a host copy: download, MPI_Allreduce,
 * upload. The ranks decide together on the first call, which every rank
 * must make. A failed ncclAllReduce ends the job with one line. */
struct lb_backend;
void dist_allreduce_sum_dev(const struct lb_backend *be, float *x, size_t n);
/* "MPI", "NCCL" or "MPI through a host copy": how dist_allreduce_sum_dev
 * summed the last gradient ("" before any call, and in one process). */
const char *dist_dev_path(void);
/* Copy root's n bytes at buf to every rank's buf. */
void dist_bcast(void *buf, size_t n, int root);
/* Ordered gather of variable-length byte buffers: every rank passes its n
 * bytes; rank 0 gets back one malloc'd buffer holding rank 0's bytes, then
 * rank 1's, ... and lens[r] = rank r's length (lens has dist_size() slots).
 * Other ranks get NULL (lens untouched). Collective: every rank must call. */
void *dist_gather_bytes(const void *buf, size_t n, size_t *lens);
/* Wait until every rank has arrived. */
void dist_barrier(void);
/* A usage error every rank detects alike (it depends on the options only):
 * rank 0 reports it and exits 2; the other ranks wait silently to be ended
 * by mpirun, so the message is printed once. Before dist_init: die_usage. */
LBDPO_NORETURN void dist_die_usage(const char *fmt, ...) LBDPO_PRINTF(1, 2);
/* An error every rank detects alike (it depends on reduced values only,
 * e.g. a non-finite global loss): rank 0 reports it and ends the job with
 * code; the other ranks wait silently to be ended. One line, printed once. */
LBDPO_NORETURN void dist_die_same(int code, const char *fmt, ...) LBDPO_PRINTF(2, 3);
/* Print "prog: error: ..." and end the whole job with the exit code. */
LBDPO_NORETURN void dist_abort(int code, const char *fmt, ...) LBDPO_PRINTF(2, 3);

#endif
