/* parallel.c — data-parallel glue of lbdpo-step (parallel.h). */
#include "libcore/train/parallel.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "libcore/dist/dist.h"

void dp_reduce_ranks(void *ctx, float *G, size_t n, float *HG, size_t hn, double *counters, int nc)
{
	dp_reduce_ctx *r = ctx;
	double t0 = now_s();
	if (nc > 0) {
		/* the time ranks wait for each other, apart from the transfer */
		dist_barrier();
		r->wait += now_s() - t0;
		t0 = now_s();
	}
	if (nc < 0) {
		dist_allreduce_min_f64(counters, (size_t)-nc);
	} else {
		/* n = hn = 0: a micro-batch's per-pair scalars (engine.h) */
		dist_allreduce_sum_dev(r->be, G, n);
		dist_allreduce_sum_f32(HG, hn);
		dist_allreduce_sum_f64(counters, (size_t)nc);
	}
	r->seconds += now_s() - t0;
}

/* The signal that stopped any rank (0: none): a signal to one rank stops
 * every rank after the same step. */
int dp_stop_all(void)
{
	double f = -(double)stop_requested();
	dist_allreduce_min_f64(&f, 1);
	return (int)-f;
}

/* a model's parameters, and its adapter's when one is set, into h */
static void model_hash_update(sha256_ctx *h, model *m)
{
	model_sync(m, 0);
	model_hash_weights(m, h); /* widened when the weights are 16-bit */
	if (model_lora(m))        /* the adapter trained */
		sha256_update(h, model_trainable(m), model_n_trainable(m) * sizeof(float));
}

/* SHA-256 of the policy's and the β model's parameters (host copies). */
void dp_params_hash(ckpt *ck, char out[65])
{
	sha256_ctx *h = sha256_new();
	model_hash_update(h, ck->m);
	sha256_update(h, ck->bh->p, ck->bh->n_params * sizeof(float));
	sha256_final_hex(h, out);
}

/* SHA-256 of a model's parameters (and its adapter's, when one is set). */
void dp_model_hash(model *m, char out[65])
{
	sha256_ctx *h = sha256_new();
	model_hash_update(h, m);
	sha256_final_hex(h, out);
}

/* Every rank must hold what rank 0 holds: compare a hash with rank 0's. */
void dp_check_same(const char *what, const char mine[65])
{
	char r0[65];
	memcpy(r0, mine, 65);
	dist_bcast(r0, sizeof r0, 0);
	if (memcmp(r0, mine, 65))
		dist_abort(EXIT_DATA, "%s differs from rank 0's (%.12s vs %.12s)", what, mine, r0);
}

/* A hash of the training records as loaded (tokens, reference values). */
void dp_data_hash(const pref_set *d, char out[65])
{
	sha256_ctx *h = sha256_new();
	for (int i = 0; i < d->n; i++) {
		const pref_rec *r = &d->r[i];
		int len[3] = {r->np, r->nc, r->nr};
		double ref[2] = {r->ref_c, r->ref_r};
		sha256_update(h, len, sizeof len);
		sha256_update(h, r->prompt, (size_t)r->np * sizeof *r->prompt);
		sha256_update(h, r->chosen, (size_t)r->nc * sizeof *r->chosen);
		sha256_update(h, r->rejected, (size_t)r->nr * sizeof *r->rejected);
		sha256_update(h, ref, sizeof ref);
	}
	sha256_final_hex(h, out);
}
