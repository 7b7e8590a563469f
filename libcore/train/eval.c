/* eval.c — held-out scoring and per-pair summaries (eval.h). */
#define _GNU_SOURCE
#include "libcore/train/eval.h"

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

void eval_loss_opts(loss_opts *lo, const loss_opts *run)
{
	loss_opts_default(lo);
	lo->kind = run->kind == LOSS_BETADPO ? LOSS_DPO : run->kind;
	lo->n_terms = run->n_terms; /* a loss list, its weights, and whether β is learned */
	memcpy(lo->terms, run->terms, sizeof lo->terms);
	memcpy(lo->term_w, run->term_w, sizeof lo->term_w);
	lo->learned_beta = run->learned_beta;
	lo->discopop_tau = run->discopop_tau;
	lo->drdpo_beta_prime = run->drdpo_beta_prime;
	lo->beta = run->beta;
	lo->label_smoothing = run->label_smoothing;
	lo->gamma = run->gamma;
	lo->sft_weight = run->sft_weight;
}

void score_pref_set(const ckpt *c, model_ws *ws, batch_buf *b, const pref_set *data, const loss_opts *lo, int bs,
		    pair_res *res, progress_meter *pm)
{
	pref_rec **recs = xmalloc(sizeof(pref_rec *) * (size_t)bs);
	const int learned = loss_learned_beta(lo);
	for (int s = 0; s < data->n; s += bs) {
		if (pm)
			progress_show(pm, s, NULL);
		int B = data->n - s < bs ? data->n - s : bs;
		for (int i = 0; i < B; i++)
			recs[i] = &data->r[s + i];
		batch_forward(c, ws, b, recs, B,
			      &(batch_opts){.n_comp = 2, .need_head = learned, .fixed_beta = lo->beta});
		/* per-pair loss terms: a batch of one pair at a time gives ℓ_i */
		for (int i = 0; i < B; i++) {
			loss_stats st;
			loss_batch(lo, &b->lp[i], 1, NULL, NULL, NULL, &st);
			pair_res *q = &res[s + i];
			q->loss = st.loss; /* preference term + weighted SFT term (no regularizers) */
			q->beta = b->lp[i].beta;
			q->ppl = exp(-b->m[i]);
			q->pc = b->lp[i].pc;
			q->pr = b->lp[i].pr;
			q->rc = b->lp[i].rc;
			q->rr = b->lp[i].rr;
			q->nc = b->lp[i].nc;
			q->nr = b->lp[i].nr;
			q->delta = (q->pc - q->rc) - (q->pr - q->rr);
			q->group = recs[i]->group;
		}
	}
	free(recs);
}

void pair_rewards(const pair_res *q, int simpo, double *c, double *j)
{
	if (simpo) {
		*c = q->beta * q->pc / q->nc;
		*j = q->beta * q->pr / q->nr;
	} else {
		*c = q->beta * (q->pc - q->rc);
		*j = q->beta * (q->pr - q->rr);
	}
}

void pair_summary(res_summary *s, const pair_res *r, int n, int g, int simpo)
{
	int k = 0;
	double L = 0, acc = 0, rc = 0, rr = 0, lc = 0, lr = 0, dc = 0, dr = 0, bmin = INFINITY, bmax = -INFINITY,
	       bm = 0, b2 = 0, pm = 0;
	for (int i = 0; i < n; i++) {
		if (g != -2 && r[i].group != g)
			continue;
		const pair_res *q = &r[i];
		L += q->loss;
		double c, j;
		pair_rewards(q, simpo, &c, &j);
		rc += c;
		rr += j;
		acc += c > j;
		lc += q->pc;
		lr += q->pr;
		dc += q->pc - q->rc;
		dr += q->pr - q->rr;
		bm += q->beta;
		b2 += q->beta * q->beta;
		bmin = fmin(bmin, q->beta);
		bmax = fmax(bmax, q->beta);
		pm += q->ppl;
		k++;
	}
	memset(s, 0, sizeof *s);
	s->n = k;
	if (k == 0)
		return;
	bm /= k;
	s->loss = L / k;
	s->acc = acc / k;
	s->rc = rc / k;
	s->rr = rr / k;
	s->margin = (rc - rr) / k;
	s->lc = lc / k;
	s->lr = lr / k;
	s->dc = dc / k;
	s->dr = dr / k;
	s->bmean = bm;
	s->bstd = sqrt(fmax(0, b2 / k - bm * bm));
	s->bmin = bmin;
	s->bmax = bmax;
	s->ppl = pm / k;
}
