/* parallel.h — data-parallel training under mpirun: the gradient reduce
 * point handed to the engine, a stop that every rank honours after the same
 * step, and the hashes that prove every rank holds the same data and
 * weights (doc/design.md §5). One process: each is a no-op or trivially
 * true (dist.h's single-rank build). */
#ifndef LBDPO_TRAIN_PARALLEL_H
#define LBDPO_TRAIN_PARALLEL_H

#include <stddef.h>

#include "libcore/nn/backend.h"
#include "libcore/train/checkpoint.h"

/* The reduce point under mpirun: sums over ranks (dist.h). G is backend
 * memory: on a GPU, NCCL or a host copy (dist_allreduce_sum_dev). Hand it
 * to train_engine_set_reduce with a dp_reduce_ctx. */
typedef struct {
	const lb_backend *be;
	double wait, seconds; /* waiting for the slowest rank; in the all-reduce */
} dp_reduce_ctx;
void dp_reduce_ranks(void *ctx, float *G, size_t n, float *HG, size_t hn, double *counters, int nc);

/* The signal that stopped any rank (0: none): a signal to one rank stops
 * every rank after the same step. */
int dp_stop_all(void);

/* SHA-256 of the policy's and the β model's parameters (host copies). */
void dp_params_hash(ckpt *ck, char out[65]);

/* SHA-256 of a model's parameters (and its adapter's, when one is set). */
void dp_model_hash(model *m, char out[65]);

/* Every rank must hold what rank 0 holds: compare a hash with rank 0's. */
void dp_check_same(const char *what, const char mine[65]);

/* A hash of the training records as loaded (tokens, reference values). */
void dp_data_hash(const pref_set *d, char out[65]);

#endif
