/* batch.c — batch scoring and one micro-batch of training (batch.h). */
#define _GNU_SOURCE
#include "libcore/train/batch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <ctype.h>
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "formats/jsonl.h"
#include "formats/records.h"
#include "formats/safetensors.h"
#include "formats/schema.h"

batch_buf *batch_new(int B, int C, int K)
{
	batch_buf *b = xcalloc(1, sizeof *b);
	b->B = B;
	b->C = C;
	b->seqs = xcalloc((size_t)B, sizeof *b->seqs);
	b->sc = xcalloc((size_t)B, sizeof *b->sc);
	b->sg = xcalloc((size_t)B, sizeof *b->sg);
	b->h = xcalloc((size_t)B * C, sizeof(float));
	b->act = xcalloc((size_t)B * (K > 0 ? K : 1), sizeof(float));
	b->m = xcalloc((size_t)B, sizeof(double));
	b->parts = xcalloc((size_t)B, sizeof *b->parts);
	b->dbeta = xcalloc((size_t)B, sizeof(double));
	b->dm = xcalloc((size_t)B, sizeof(double));
	b->dh = xcalloc((size_t)B * C, sizeof(float));
	b->lp = xcalloc((size_t)B, sizeof *b->lp);
	b->lg = xcalloc((size_t)B, sizeof *b->lg);
	return b;
}

void batch_free(batch_buf *b)
{
	if (!b)
		return;
	free(b->seqs);
	free(b->sc);
	free(b->sg);
	free(b->h);
	free(b->act);
	free(b->m);
	free(b->parts);
	free(b->dbeta);
	free(b->dm);
	free(b->dh);
	free(b->lp);
	free(b->lg);
	free(b);
}

void batch_forward(const ckpt *c, model_ws *ws, batch_buf *b, pref_rec *const *recs, int B, const batch_opts *o)
{
	const int n_comp = o->n_comp, train = o->train, need_head = o->need_head;
	const double fixed_beta = o->fixed_beta;
	const int C = b->C;
	for (int i = 0; i < B; i++) {
		const pref_rec *r = recs[i];
		b->seqs[i] = (model_seq){.prompt = r->prompt,
					 .n_prompt = r->np,
					 .comp = {r->chosen, r->rejected},
					 .n_comp_tok = {r->nc, r->nr},
					 .n_comp = n_comp};
		memset(&b->sc[i], 0, sizeof b->sc[i]);
		if (need_head) {
			if (c->pool == POOL_LAST)
				b->sc[i].h_last = b->h + (size_t)i * C;
			else
				b->sc[i].h_mean = b->h + (size_t)i * C;
		}
	}
	model_forward(c->m, ws, b->seqs, B, b->sc, train);
	for (int i = 0; i < B; i++)
		b->m[i] = c->ppl_from == PPL_POLICY ? b->sc[i].prompt_mean_logp : recs[i]->ref_plogp;
	if (need_head)
		betahead_forward(c->bh, b->parts, b->act, b->h, b->m, B);
	for (int i = 0; i < B; i++) {
		const pref_rec *r = recs[i];
		b->lp[i] = (loss_pair){.pc = b->sc[i].logp[0],
				       .pr = n_comp > 1 ? b->sc[i].logp[1] : 0,
				       .rc = r->ref_c,
				       .rr = r->ref_r,
				       .nc = r->nc,
				       .nr = r->nr,
				       .beta = need_head ? b->parts[i].beta : fixed_beta,
				       .group = r->group,
				       .h_ref = r->ref_entropy,
				       .margin = r->margin};
		if (model_cfg(c->m)->score_labels) { /* a reward model: its scores take the log-probs' place */
			b->lp[i].pc = b->sc[i].reward[0];
			b->lp[i].pr = n_comp > 1 ? b->sc[i].reward[1] : 0;
		}
	}
}

/* The loss of a micro-batch split over workers (microbatch_opts.share):
 * every worker puts its pairs' scalars into their slots of a zeroed
 * [n_all × LP_FIELDS] array and the allreduce sums them, which hands every
 * worker the whole batch exactly (x + 0 = x). Each then runs loss_batch on
 * the same pairs in the one-worker order, so beta-dpo's statistics, its
 * sampled selection (the rng and moving statistics advance alike on every
 * worker) and the group means are the one-worker ones, and keeps the
 * gradients of its own slots: the sum over workers is the one-worker
 * gradient. */
enum { LP_PC, LP_PR, LP_RC, LP_RR, LP_NC, LP_NR, LP_BETA, LP_GROUP, LP_HREF, LP_MARGIN, LP_FIELDS };

static double loss_shared(const microbatch_opts *o, batch_buf *b, int B, loss_stats *st)
{
	const int n = o->n_all;
	double *x = xcalloc((size_t)n * LP_FIELDS, sizeof *x);
	for (int j = 0; j < B; j++) {
		const loss_pair *q = &b->lp[j];
		double *r = x + (size_t)o->slot[j] * LP_FIELDS;
		r[LP_PC] = q->pc, r[LP_PR] = q->pr, r[LP_RC] = q->rc, r[LP_RR] = q->rr;
		r[LP_NC] = q->nc, r[LP_NR] = q->nr, r[LP_BETA] = q->beta, r[LP_GROUP] = q->group;
		r[LP_HREF] = q->h_ref;
		r[LP_MARGIN] = q->margin;
	}
	o->share(o->share_ctx, x, (size_t)n * LP_FIELDS);
	loss_pair *p = xmalloc(sizeof *p * (size_t)n);
	loss_pair_grad *g = xmalloc(sizeof *g * (size_t)n);
	for (int i = 0; i < n; i++) {
		const double *r = x + (size_t)i * LP_FIELDS;
		p[i] = (loss_pair){.pc = r[LP_PC],
				   .pr = r[LP_PR],
				   .rc = r[LP_RC],
				   .rr = r[LP_RR],
				   .nc = (int)r[LP_NC],
				   .nr = (int)r[LP_NR],
				   .beta = r[LP_BETA],
				   .group = (int)r[LP_GROUP],
				   .h_ref = r[LP_HREF],
				   .margin = r[LP_MARGIN]};
	}
	double L = loss_batch(o->loss, p, n, g, o->bdpo, o->rng, st);
	for (int j = 0; j < B; j++)
		b->lg[j] = g[o->slot[j]];
	free(x);
	free(p);
	free(g);
	return L;
}

double train_microbatch(const ckpt *c, model_ws *ws, batch_buf *b, pref_rec *const *recs, int B,
			const microbatch_opts *o, float *G, float *HG, loss_stats *st)
{
	const loss_opts *lo = o->loss;
	const beta_grad_mode bg = o->beta_grad;
	const int policy_trained = o->policy_trained;
	const double scale = o->scale;
	bdpo_state *bs = o->bdpo;
	uint64_t *rng = o->rng;
	const int learned = loss_learned_beta(lo);
	const int n_comp = loss_opts_needs_rejected(lo) ? 2 : 1;
	const int head_trained = learned && bg != BGRAD_NONE;
	const int C = b->C;
	if (B > 0)
		batch_forward(c, ws, b, recs, B,
			      &(batch_opts){.n_comp = n_comp,
					    .train = policy_trained,
					    .need_head = learned,
					    .fixed_beta = lo->beta});
	loss_stats s;
	double L = o->share ? loss_shared(o, b, B, &s) : loss_batch(lo, b->lp, B, b->lg, bs, rng, &s);
	if (st)
		*st = s;
	if (B == 0)
		return L;
	for (int i = 0; i < B; i++)
		b->dbeta[i] = b->lg[i].d_beta * scale;
	if (head_trained)
		betahead_backward(c->bh, HG, b->dm, bg == BGRAD_FULL ? b->dh : NULL, b->dbeta, b->parts, b->act, b->h,
				  B);
	if (policy_trained) {
		for (int i = 0; i < B; i++) {
			model_seq_grad *g = &b->sg[i];
			memset(g, 0, sizeof *g);
			/* through Δ (and the SFT term); a reward model: through its scores */
			const int rm = model_cfg(c->m)->score_labels;
			g->d_logp[0] = rm ? 0 : b->lg[i].d_pc * scale;
			g->d_logp[1] = rm ? 0 : b->lg[i].d_pr * scale;
			g->d_reward[0] = rm ? b->lg[i].d_pc * scale : 0;
			g->d_reward[1] = rm ? b->lg[i].d_pr * scale : 0;
			if (head_trained && bg == BGRAD_FULL) {
				/* through PPL: ∂β/∂m = −β, m the policy's mean prompt log-prob */
				if (c->ppl_from == PPL_POLICY)
					g->d_prompt_mean_logp = b->dm[i];
				/* through h */
				if (c->pool == POOL_LAST)
					g->d_h_last = b->dh + (size_t)i * C;
				else
					g->d_h_mean = b->dh + (size_t)i * C;
			}
		}
		model_backward(c->m, ws, b->sg, G);
	}
	return L;
}
