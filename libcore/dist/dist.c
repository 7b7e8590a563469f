/* dist.c — the communication layer (dist.h): MPI when built with
 * -DLBDPO_MPI, else one process where every operation is the identity.
 *
 * MPI counts are ints, so every transfer goes in pieces of at most DIST_CHUNK
 * elements: a 7B model's gradient (7e9 floats) or a gathered output over 2 GiB
 * must not overflow a count.
 */
#include "libcore/dist/dist.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libcore/nn/backend.h"

#ifdef LBDPO_MPI
#include <mpi.h>
#endif
#ifdef LBDPO_NCCL /* MPI + CUDA builds (Makefile) */
#include <cuda_runtime.h>
#include <nccl.h>
#endif

#define DIST_CHUNK ((size_t)1 << 30)

static int g_rank = 0, g_size = 1;

/* mpirun ends the other ranks as soon as one has exited nonzero: a rank
 * that leaves the reporting to rank 0 waits for that; the bound only
 * matters under a launcher that does not. */
static LBDPO_NORETURN void wait_to_be_ended(int code)
{
	for (int i = 0; i < 60; i++)
		sleep(1);
	exit(code);
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }

static char g_name[256];

/* "prog[rank R]" on ranks other than 0, so every message says where it came from. */
static void name_rank(void)
{
	if (g_size > 1 && g_rank > 0) {
		snprintf(g_name, sizeof g_name, "%s[rank %d]", progname(), g_rank);
		set_progname(g_name);
	}
}

#ifdef LBDPO_MPI

int dist_have_mpi(void) { return 1; }

/* dist_allreduce_sum_dev */
static float *g_stage; /* [g_stage_n] host copy of a device gradient */
static size_t g_stage_n;
static const char *g_dev_path = "";
#ifdef LBDPO_NCCL
static ncclComm_t g_nccl;
static int g_nccl_state; /* 0 not tried, 1 ready, -1 off (host copy) */
#endif

void dist_init(int *argc, char ***argv)
{
	int inited = 0;
	MPI_Initialized(&inited);
	if (!inited && MPI_Init(argc, argv) != MPI_SUCCESS)
		die("MPI_Init failed");
	/* The default, stated: any failed call ends the job (dist.h, Faults). */
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
	MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
	MPI_Comm_size(MPI_COMM_WORLD, &g_size);
	name_rank();
}

void dist_finalize(void)
{
#ifdef LBDPO_NCCL
	ncclResult_t r;
	if (g_nccl_state > 0 && (r = ncclCommDestroy(g_nccl)) != ncclSuccess)
		warning("ncclCommDestroy: %s", ncclGetErrorString(r));
	g_nccl_state = 0;
#endif
	free(g_stage);
	g_stage = NULL;
	g_stage_n = 0;
	int fin = 0;
	MPI_Finalized(&fin);
	if (!fin)
		MPI_Finalize();
}

static void allreduce(void *x, size_t n, size_t elsz, MPI_Datatype t, MPI_Op op)
{
	if (g_size == 1)
		return;
	for (size_t at = 0; at < n; at += DIST_CHUNK) {
		size_t k = n - at < DIST_CHUNK ? n - at : DIST_CHUNK;
		MPI_Allreduce(MPI_IN_PLACE, (char *)x + at * elsz, (int)k, t, op, MPI_COMM_WORLD);
	}
}

void dist_allreduce_sum_f32(float *x, size_t n) { allreduce(x, n, sizeof *x, MPI_FLOAT, MPI_SUM); }
void dist_allreduce_sum_f64(double *x, size_t n) { allreduce(x, n, sizeof *x, MPI_DOUBLE, MPI_SUM); }
void dist_allreduce_min_f64(double *x, size_t n) { allreduce(x, n, sizeof *x, MPI_DOUBLE, MPI_MIN); }

#ifdef LBDPO_NCCL
/* On the first call (every rank calls it, whatever its backend): make the
 * NCCL communicator on the device every rank selected. 1 when every rank
 * wants it (its gradient is on a CUDA device, LBDPO_NCCL is not 0) and has
 * it, else 0 on every rank: the ranks agree through MPI_Allreduce, so they
 * all take the same path (mixed collectives would hang), e.g. when one
 * host has no GPU and its rank runs on the CPU. */
static int nccl_ready(int want)
{
	if (g_nccl_state)
		return g_nccl_state > 0;
	const char *env = getenv("LBDPO_NCCL");
	int off = env && !strcmp(env, "0"), all_want = want && !off;
	MPI_Allreduce(MPI_IN_PLACE, &all_want, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
	if (!all_want) {
		g_nccl_state = -1;
		if (want && off)
			info("LBDPO_NCCL=0: the gradient all-reduce goes through a host copy");
		else if (want)
			warning("not every rank's gradient is on a CUDA device: NCCL unused, the gradient "
				"all-reduce goes through a host copy");
		return 0;
	}
	/* rank 0's id, and whether rank 0 could make one, to every rank */
	struct {
		ncclUniqueId id;
		int ok;
	} u;
	memset(&u, 0, sizeof u);
	char why[256] = "";
	if (g_rank == 0) {
		ncclResult_t r = ncclGetUniqueId(&u.id);
		u.ok = r == ncclSuccess;
		if (!u.ok)
			snprintf(why, sizeof why, "ncclGetUniqueId: %s", ncclGetErrorString(r));
	}
	MPI_Bcast(&u, (int)sizeof u, MPI_BYTE, 0, MPI_COMM_WORLD);
	int ok = u.ok;
	if (ok) {
		ncclResult_t r = ncclCommInitRank(&g_nccl, g_size, u.id, g_rank);
		ok = r == ncclSuccess;
		if (!ok)
			snprintf(why, sizeof why,
				 "ncclCommInitRank: %s (ranks sharing one GPU? give each its own "
				 "--device cuda:N)",
				 ncclGetErrorString(r));
	}
	int all = ok;
	MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
	if (!all) {
		ncclResult_t r;
		if (ok && (r = ncclCommDestroy(g_nccl)) != ncclSuccess)
			warning("ncclCommDestroy: %s", ncclGetErrorString(r));
		if (!ok || g_rank == 0)
			warning("NCCL is not available (%s); the gradient all-reduce goes through a host copy",
				why[0] ? why : "another rank could not set it up");
	} else if (g_rank == 0) {
		info("NCCL: the gradient all-reduce runs on the GPUs of the %d ranks", g_size);
	}
	g_nccl_state = all ? 1 : -1;
	return all;
}

static void nccl_allreduce(float *x, size_t n)
{
	ncclResult_t r = ncclAllReduce(x, x, n, ncclFloat, ncclSum, g_nccl, 0);
	if (r != ncclSuccess)
		dist_abort(EXIT_DATA, "ncclAllReduce of %zu floats: %s", n, ncclGetErrorString(r));
	cudaError_t e = cudaStreamSynchronize(0);
	if (e != cudaSuccess)
		dist_abort(EXIT_DATA, "ncclAllReduce of %zu floats: cudaStreamSynchronize: %s", n,
			   cudaGetErrorString(e));
}
#endif

const char *dist_dev_path(void) { return g_dev_path; }

void dist_allreduce_sum_dev(const lb_backend *be, float *x, size_t n)
{
	if (g_size == 1 || n == 0)
		return;
#ifdef LBDPO_NCCL
	if (nccl_ready(!be->unified && !strcmp(be->name, "cuda"))) {
		g_dev_path = "NCCL";
		nccl_allreduce(x, n);
		return;
	}
#endif
	if (be->unified) {
		g_dev_path = "MPI";
		dist_allreduce_sum_f32(x, n);
		return;
	}
	g_dev_path = "MPI through a host copy";
	if (g_stage_n < n) {
		free(g_stage);
		g_stage = xmalloc(n * sizeof *g_stage);
		g_stage_n = n;
	}
	be->download(g_stage, x, n * sizeof *x);
	dist_allreduce_sum_f32(g_stage, n);
	be->upload(x, g_stage, n * sizeof *x);
}

void dist_bcast(void *buf, size_t n, int root)
{
	if (g_size == 1)
		return;
	for (size_t at = 0; at < n; at += DIST_CHUNK) {
		size_t k = n - at < DIST_CHUNK ? n - at : DIST_CHUNK;
		MPI_Bcast((char *)buf + at, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
	}
}

void *dist_gather_bytes(const void *buf, size_t n, size_t *lens)
{
	if (g_size == 1) {
		lens[0] = n;
		void *all = xmalloc(n ? n : 1);
		if (n)
			memcpy(all, buf, n);
		return all;
	}
	/* Lengths first (one uint64 per rank), then the bytes point to point:
	 * MPI_Gatherv would limit the total to INT_MAX bytes. */
	uint64_t mine = n, *l64 = g_rank == 0 ? xmalloc(g_size * sizeof *l64) : NULL;
	MPI_Gather(&mine, 1, MPI_UINT64_T, l64, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
	if (g_rank != 0) {
		for (size_t at = 0; at < n; at += DIST_CHUNK) {
			size_t k = n - at < DIST_CHUNK ? n - at : DIST_CHUNK;
			MPI_Send((const char *)buf + at, (int)k, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
		}
		return NULL;
	}
	size_t total = 0;
	for (int r = 0; r < g_size; r++)
		total += lens[r] = (size_t)l64[r];
	free(l64);
	char *all = xmalloc(total ? total : 1), *p = all + n;
	if (n)
		memcpy(all, buf, n);
	for (int r = 1; r < g_size; r++)
		for (size_t at = 0; at < lens[r]; at += DIST_CHUNK) {
			size_t k = lens[r] - at < DIST_CHUNK ? lens[r] - at : DIST_CHUNK;
			MPI_Recv(p, (int)k, MPI_BYTE, r, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			p += k;
		}
	return all;
}

void dist_barrier(void)
{
	if (g_size > 1)
		MPI_Barrier(MPI_COMM_WORLD);
}

static LBDPO_NORETURN void end_job(int code)
{
	out_abort_all(); /* this rank's temporaries: no partial output */
	if (g_size > 1)
		MPI_Abort(MPI_COMM_WORLD, code);
	exit(code);
}

#else /* one process */

int dist_have_mpi(void) { return 0; }

void dist_init(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Started by a launcher with several ranks (Open MPI, MPICH/Slurm PMI):
	 * N copies of a plain build would each do the whole job. */
	const char *e = getenv("OMPI_COMM_WORLD_SIZE");
	if (!e)
		e = getenv("PMI_SIZE");
	const char *r = getenv("OMPI_COMM_WORLD_RANK");
	if (!r)
		r = getenv("PMI_RANK");
	if (e && atoi(e) > 1 && r && atoi(r) > 0)
		wait_to_be_ended(EXIT_DATA); /* rank 0 says why, once */
	if (e && atoi(e) > 1)
		die("started with %d MPI ranks, but this program was built without MPI "
		    "(apt-get install libopenmpi-dev openmpi-bin, then rebuild)",
		    atoi(e));
	name_rank();
}

void dist_finalize(void) {}
void dist_allreduce_sum_dev(const lb_backend *be, float *x, size_t n) { (void)be, (void)x, (void)n; }
const char *dist_dev_path(void) { return ""; }
void dist_allreduce_sum_f32(float *x, size_t n) { (void)x, (void)n; }
void dist_allreduce_sum_f64(double *x, size_t n) { (void)x, (void)n; }
void dist_allreduce_min_f64(double *x, size_t n) { (void)x, (void)n; }
void dist_bcast(void *buf, size_t n, int root) { (void)buf, (void)n, (void)root; }
void dist_barrier(void) {}

void *dist_gather_bytes(const void *buf, size_t n, size_t *lens)
{
	lens[0] = n;
	void *all = xmalloc(n ? n : 1);
	if (n)
		memcpy(all, buf, n);
	return all;
}

static LBDPO_NORETURN void end_job(int code)
{
	out_abort_all();
	exit(code);
}

#endif

void dist_abort(int code, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	error("%s", buf);
	end_job(code);
}

void dist_die_usage(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (g_rank == 0)
		die_usage("%s", buf);
	wait_to_be_ended(EXIT_USAGE);
}

void dist_die_same(int code, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (g_rank != 0)
		wait_to_be_ended(code);
	error("%s", buf);
	end_job(code);
}

const char *dist_help_text(void)
{
	static char buf[160];
	snprintf(buf, sizeof buf,
		 "Under mpirun -np N the ranks split the records and rank 0 writes them all\n"
		 "(see the man page); this build %s MPI.",
		 dist_have_mpi() ? "has" : "lacks");
	return buf;
}
