/* engine.c — one optimizer step of (LB-)DPO (see engine.h). */
#define _GNU_SOURCE
#include "libcore/train/engine.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "libcore/nn/backend.h"
#include "libcore/objective/betahead.h"
#include "base/rng.h"
#include "base/util.h"

/* ------------------------------------------------------------- options */

void train_opts_default(train_opts *o)
{
	memset(o, 0, sizeof *o);
	ckpt_opts_default(&o->ck);
	loss_opts_default(&o->loss);
	o->loss.entropy_alpha = 0.05;
	o->batch_size = 8;
	o->grad_accum = 1;
	o->total_steps = -1;
	o->warmup = 0;
	o->schedule = SCHED_LINEAR;
	o->lr = 5e-6;
	o->beta_lr = 1e-3;
	o->clip = 1.0;
	o->beta_grad = BGRAD_FULL;
	/* PPL(x) from the reference: with the policy's, full β gradients make
	 * prompts less likely to raise β (the PPL hazard, man lbdpo-step) */
	o->ck.ppl_from = PPL_REF;
	o->beta_init = -1;
	o->w_init = -1;
}

json_t *train_opts_to_json(const train_opts *o)
{
	const loss_opts *l = &o->loss;
	json_t *j = json_object();
#define S(k, v) json_object_set_new(j, k, json_string(v))
#define F(k, v) json_object_set_new(j, k, json_real(v))
#define I(k, v) json_object_set_new(j, k, json_integer((json_int_t)(v)))
	S("init", o->init ? o->init : "");
	if (l->n_terms > 0) { /* a list: keys only then, so single-loss runs write what they did */
		char names[512];
		S("loss", loss_opts_names(l, names, sizeof names));
		json_t *w = json_array();
		for (int t = 0; t < l->n_terms; t++)
			json_array_append_new(w, json_real(l->term_w[t]));
		json_object_set_new(j, "loss_weights", w);
	} else {
		S("loss", loss_kind_name(l->kind));
	}
	if (l->learned_beta)
		json_object_set_new(j, "learned_beta", json_true());
	if (l->discopop_tau != 0.05)
		F("discopop_tau", l->discopop_tau);
	if (l->drdpo_beta_prime != 1.0) /* only then: other runs write what they did */
		F("drdpo_beta_prime", l->drdpo_beta_prime);
	F("beta", l->beta);
	F("epsilon", o->ck.eps);
	I("batch_size", o->batch_size);
	I("grad_accum", o->grad_accum);
	I("total_steps", o->total_steps);
	F("lr", o->lr);
	F("beta_lr", o->beta_lr);
	F("weight_decay", o->weight_decay);
	F("beta_wd", o->beta_wd);
	I("warmup", o->warmup);
	S("schedule", sched_name(o->schedule));
	F("clip", o->clip);
	I("seed", o->ck.seed);
	S("beta_grad", beta_grad_name(o->beta_grad));
	S("pool", pool_kind_name(o->ck.pool));
	S("ppl_from", ppl_source_name(o->ck.ppl_from));
	json_object_set_new(j, "freeze_policy", json_boolean(o->freeze_policy));
	F("label_smoothing", l->label_smoothing);
	F("gamma", l->gamma);
	F("sft_weight", l->sft_weight);
	F("bdpo_alpha", l->bdpo_alpha);
	F("bdpo_rho", l->bdpo_rho);
	F("range_reg", l->range_reg);
	F("beta_min", l->beta_min);
	F("beta_max", l->beta_max);
	F("group_reg", l->group_reg);
	F("entropy_reg", l->entropy_reg);
	F("entropy_alpha", l->entropy_alpha);
	I("n_records", o->n_records);
	F("beta_init", o->beta_init > 0 ? o->beta_init : l->beta);
	F("w_init", o->w_init);
	if (l->kind == LOSS_REWARD || l->center_coef != 0) /* only then: other runs' options stay as they were */
		F("center_rewards_coef", l->center_coef);
#undef S
#undef F
#undef I
	return j;
}

/* "loss" (a name or a list) and "loss_weights" of train_opts_to_json. */
static int loss_from_json(loss_opts *l, const json_t *j)
{
	const json_t *v = json_object_get(j, "loss"), *w = json_object_get(j, "loss_weights"), *x;
	char ws[512], err[256];
	size_t i, at = 0;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return -1;
	if (w) {
		if (!json_is_array(w))
			return -1;
		ws[0] = 0;
		json_array_foreach(w, i, x)
		{
			if (!json_is_number(x) || at >= sizeof ws - 32)
				return -1;
			at += (size_t)snprintf(ws + at, sizeof ws - at, "%s%.17g", i ? "," : "", json_number_value(x));
		}
	}
	return loss_opts_set(l, json_string_value(v), w ? ws : NULL, err, sizeof err);
}

int train_opts_from_json(train_opts *o, const json_t *j, const char **bad)
{
	loss_opts *l = &o->loss;
	const json_t *v;
	const char *key = NULL;
	if (!json_is_object(j)) {
		*bad = "(not an object)";
		return -1;
	}
	/* each macro: key present → check the type, convert, store */
#define GET(k) (key = (k), v = json_object_get(j, k))
#define NUM(k, dst)                                                                                                    \
	if (GET(k)) {                                                                                                  \
		if (!json_is_number(v))                                                                                \
			goto fail;                                                                                     \
		dst = json_number_value(v);                                                                            \
	}
#define INT(k, dst)                                                                                                    \
	if (GET(k)) {                                                                                                  \
		if (!json_is_integer(v))                                                                               \
			goto fail;                                                                                     \
		dst = json_integer_value(v);                                                                           \
	}
#define ENUM(k, dst, parse, type)                                                                                      \
	if (GET(k)) {                                                                                                  \
		int e_ = parse(json_string_value(v));                                                                  \
		if (e_ < 0)                                                                                            \
			goto fail;                                                                                     \
		dst = (type)e_;                                                                                        \
	}
	if (GET("init")) {
		if (!json_is_string(v))
			goto fail;
		o->init = json_string_value(v);
	}
	key = "loss";
	if (loss_from_json(l, j) < 0)
		goto fail;
	if (GET("learned_beta")) {
		if (!json_is_boolean(v))
			goto fail;
		l->learned_beta = json_is_true(v);
	}
	NUM("discopop_tau", l->discopop_tau);
	NUM("drdpo_beta_prime", l->drdpo_beta_prime);
	NUM("beta", l->beta);
	NUM("epsilon", o->ck.eps);
	INT("batch_size", o->batch_size);
	INT("grad_accum", o->grad_accum);
	INT("total_steps", o->total_steps);
	NUM("lr", o->lr);
	NUM("beta_lr", o->beta_lr);
	NUM("weight_decay", o->weight_decay);
	NUM("beta_wd", o->beta_wd);
	INT("warmup", o->warmup);
	ENUM("schedule", o->schedule, sched_parse, sched_kind);
	NUM("clip", o->clip);
	INT("seed", o->ck.seed);
	ENUM("beta_grad", o->beta_grad, beta_grad_parse, beta_grad_mode);
	ENUM("pool", o->ck.pool, pool_kind_parse, pool_kind);
	ENUM("ppl_from", o->ck.ppl_from, ppl_source_parse, ppl_source);
	if (GET("freeze_policy")) {
		if (!json_is_boolean(v))
			goto fail;
		o->freeze_policy = json_is_true(v);
	}
	NUM("label_smoothing", l->label_smoothing);
	NUM("gamma", l->gamma);
	NUM("sft_weight", l->sft_weight);
	NUM("bdpo_alpha", l->bdpo_alpha);
	NUM("bdpo_rho", l->bdpo_rho);
	NUM("range_reg", l->range_reg);
	NUM("beta_min", l->beta_min);
	NUM("beta_max", l->beta_max);
	NUM("group_reg", l->group_reg);
	NUM("entropy_reg", l->entropy_reg);
	NUM("entropy_alpha", l->entropy_alpha);
	INT("n_records", o->n_records);
	NUM("beta_init", o->beta_init);
	NUM("w_init", o->w_init);
	NUM("center_rewards_coef", l->center_coef);
#undef GET
#undef NUM
#undef INT
#undef ENUM
	return 0;
fail:
	*bad = key;
	return -1;
}

/* -------------------------------------------------------------- engine */

struct train_engine {
	ckpt *ck;
	pref_set *data;
	const train_opts *o;
	const lb_backend *be;
	size_t np, hn;
	float *G;       /* [np] policy gradient, backend memory */
	float *HG;      /* [hn] β-model gradient, host */
	float *dm, *dv; /* policy AdamW moments in the backend (ck->pm/pv on the CPU) */
	model_ws *ws;
	batch_buf *bb;
	pref_rec **recs; /* [batch_size] */
	int *slot;       /* [batch_size] recs[j] is slot slot[j] of the micro-batch */
	int *perm;       /* [n records] this epoch's order */
	int learned, n_comp, head_trained, policy_trained;
	grad_reduce_fn reduce;
	void *reduce_ctx;
	int rank, nranks; /* this worker's slots of each micro-batch (1 worker: all) */
};

void epoch_perm(int *perm, int n, uint64_t seed, long epoch)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)epoch * 0xD1B54A32D192ED03ull);
	for (int i = 0; i < n; i++)
		perm[i] = i;
	for (int i = n - 1; i > 0; i--) {
		int j = rng_below(&s, i + 1);
		int t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
}

static int all_finite(const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return 0;
	return 1;
}

train_engine *train_engine_new(ckpt *ck, const pref_set *data_c, const train_opts *o)
{
	pref_set *data = (pref_set *)data_c; /* records are handed out mutable to batch_forward */
	const loss_opts *lo = &o->loss;
	const int bs = o->batch_size;
	train_engine *e = xcalloc(1, sizeof *e);
	e->ck = ck;
	e->data = data;
	e->o = o;
	e->be = model_backend(ck->m);
	e->learned = loss_learned_beta(lo);
	e->n_comp = loss_opts_needs_rejected(lo) ? 2 : 1;
	if ((lo->kind == LOSS_REWARD) != (model_cfg(ck->m)->score_labels != 0))
		die("%s: %s", o->init,
		    lo->kind == LOSS_REWARD
			    ? "--loss reward trains a reward model; this model has no score head"
			    : "a reward model (XxxForSequenceClassification) trains with --loss reward only");
	for (int i = 0; e->learned && i < data->n; i++) {
		if (ck->ppl_from == PPL_REF && !data->r[i].has_plogp)
			die("%s: record %llu: no ref_prompt_logp (needed by --ppl-from ref, the default; lbdpo-refcache "
			    "writes it)",
			    data->name, (unsigned long long)data->r[i].index);
		if (lo->entropy_reg != 0 && !data->r[i].has_entropy)
			die("%s: record %llu: no ref_prompt_entropy (needed by --entropy-reg)", data->name,
			    (unsigned long long)data->r[i].index);
	}
	e->np = model_n_trainable(ck->m); /* every weight, or a LoRA adapter's */
	e->hn = ck->bh->n_params;
	e->G = e->be->alloc(e->np * sizeof(float));
	e->HG = xcalloc(e->hn, sizeof(float));
	e->nranks = 1;
	e->dm = backend_mirror(e->be, ck->pm, e->np * sizeof(float));
	e->dv = backend_mirror(e->be, ck->pv, e->np * sizeof(float));
	e->ws = model_ws_new(ck->m);
	model_ws_set_checkpointing(e->ws, o->grad_ckpt);
	e->bb = batch_new(bs, model_cfg(ck->m)->dim, ck->bh->K);
	e->recs = xmalloc(sizeof(pref_rec *) * (size_t)bs);
	e->slot = xmalloc(sizeof(int) * (size_t)bs);
	e->perm = xmalloc(sizeof(int) * (size_t)data->n);
	epoch_perm(e->perm, data->n, o->ck.seed, ck->epoch);
	if (ck->pos > data->n)
		die("%s: data position %ld is past the %d records (other data than the checkpoint's?)", o->init,
		    ck->pos, data->n);
	e->head_trained = e->learned && o->beta_grad != BGRAD_NONE;
	e->policy_trained = !o->freeze_policy;
	if (!e->policy_trained && !e->head_trained)
		warning("nothing to train (--freeze-policy with a fixed beta): steps only advance the state");
	if (e->learned && !ck->resumed && o->w_init <= 0) {
		/* --beta-init: mean β of the first batch = --beta (β is linear in w);
		 * the batch is peeked, the data position does not move */
		long ep = ck->epoch, p = ck->pos;
		for (int i = 0; i < bs; i++) {
			if (p >= data->n) {
				ep++;
				p = 0;
				epoch_perm(e->perm, data->n, o->ck.seed, ep);
			}
			e->recs[i] = &data->r[e->perm[p++]];
		}
		batch_forward(ck, e->ws, e->bb, e->recs, bs,
			      &(batch_opts){.n_comp = e->n_comp, .train = 0, .need_head = 1, .fixed_beta = lo->beta});
		betahead_set_mean_beta(ck->bh, e->bb->parts, bs, o->beta_init > 0 ? o->beta_init : lo->beta);
		epoch_perm(e->perm, data->n, o->ck.seed, ck->epoch);
	}
	return e;
}

void train_engine_set_reduce(train_engine *e, grad_reduce_fn fn, void *ctx)
{
	e->reduce = fn;
	e->reduce_ctx = ctx;
}

void train_engine_set_worker(train_engine *e, int rank, int nranks)
{
	e->rank = rank;
	e->nranks = nranks;
}

/* microbatch_opts.share: the per-pair scalars of a micro-batch summed over
 * workers, through the reduce hook with no gradient (n = hn = 0). */
static void share_pairs(void *ctx, double *x, size_t n)
{
	train_engine *e = ctx;
	e->reduce(e->reduce_ctx, NULL, 0, NULL, 0, x, (int)n);
}

/* indices into the per-step sums handed to the reduce point */
enum { S_LOSS, S_RC, S_RR, S_ACC, S_LC, S_LR, S_B, S_B2, S_PPL, S_TOK, S_N, S_R2, S_COUNT };

int train_step(train_engine *e, train_metrics *m)
{
	ckpt *ck = e->ck;
	const train_opts *o = e->o;
	const loss_opts *lo = &o->loss;
	const lb_backend *be = e->be;
	const int bs = o->batch_size;
	const long accum = o->grad_accum;
	const size_t np = e->np, hn = e->hn;
	float *G = e->G, *HG = e->HG;
	batch_buf *bb = e->bb;
	double t0 = now_s();
	memset(m, 0, sizeof *m);
	be->memset0(G, np * sizeof(float));
	memset(HG, 0, hn * sizeof(float));
	/* per-step sums: loss, rewards, accuracies, logps, β stats, ppl, tokens */
	double S[S_COUNT] = {0}, bmin = INFINITY, bmax = -INFINITY;
	/* beta-dpo and --group-reg: the loss needs every worker's pairs */
	const int whole = e->nranks > 1 && e->reduce && loss_needs_whole_batch(lo);
	const microbatch_opts mo = {.loss = lo,
				    .beta_grad = o->beta_grad,
				    .policy_trained = e->policy_trained,
				    .scale = 1.0 / accum,
				    .bdpo = &ck->bs,
				    .rng = &ck->rng};
	for (long a = 0; a < accum; a++) {
		/* Every worker walks the whole micro-batch (the data position stays
		 * global, so a run resumes with any number of workers) and takes
		 * slots i ≡ rank (mod nranks): nloc of the bs pairs, possibly 0. */
		int nloc = 0;
		long sft_tok = 0; /* Σ nc over the whole micro-batch */
		for (int i = 0; i < bs; i++) {
			if (ck->pos >= e->data->n) {
				ck->epoch++;
				ck->pos = 0;
				epoch_perm(e->perm, e->data->n, o->ck.seed, ck->epoch);
			}
			pref_rec *r = &e->data->r[e->perm[ck->pos++]];
			sft_tok += r->nc;
			if (i % e->nranks == e->rank) {
				e->slot[nloc] = i;
				e->recs[nloc++] = r;
			}
		}
		microbatch_opts ml = mo;
		loss_opts lm = *lo;
		if (whole) {
			/* the loss is over all bs pairs on every worker (batch.h):
			 * its gradients are already this worker's share, and its
			 * value is counted once, by worker 0. Every worker takes
			 * part, even one with no pair (the share is collective). */
			ml.n_all = bs;
			ml.slot = e->slot;
			ml.share = share_pairs;
			ml.share_ctx = e;
		} else {
			if (nloc == 0)
				continue;
			/* loss_batch averages over its nloc pairs; nloc/bs turns
			 * that into this worker's share of the mean over all bs
			 * pairs, so the sum over workers is the one-worker loss
			 * and gradient (exactly 1.0 with one worker: the same bits
			 * as before) */
			ml.scale = mo.scale * ((double)nloc / bs);
			if (nloc < bs) {
				/* the SFT/RPO token mean is over the whole micro-batch (loss.h) */
				lm.sft_tokens = (double)sft_tok * nloc / bs;
				ml.loss = &lm;
			}
		}
		loss_stats st;
		train_microbatch(ck, e->ws, bb, e->recs, nloc, &ml, G, HG, &st);
		if (!whole || e->rank == 0)
			S[S_LOSS] += st.loss * ml.scale;
		for (int i = 0; i < nloc; i++) {
			const loss_pair *q = &bb->lp[i];
			double b = lo->kind == LOSS_BETADPO ? st.beta_used : q->beta;
			double rc = b * (q->pc - q->rc), rr = b * (q->pr - q->rr);
			if (lo->kind == LOSS_REWARD) { /* the reward model's own scores */
				rc = q->pc;
				rr = q->pr;
				S[S_R2] += rc * rc + rr * rr;
			}
			S[S_RC] += rc;
			S[S_RR] += rr;
			S[S_ACC] += rc > rr;
			if (lo->kind != LOSS_REWARD) { /* a reward model has no log-probs */
				S[S_LC] += q->pc;
				S[S_LR] += q->pr;
			}
			S[S_B] += b;
			S[S_B2] += b * b;
			bmin = fmin(bmin, b);
			bmax = fmax(bmax, b);
			S[S_PPL] += exp(-bb->sc[i].prompt_mean_logp);
			S[S_TOK] += e->recs[i]->np + e->recs[i]->nc + (e->n_comp > 1 ? e->recs[i]->nr : 0);
			S[S_N] += 1;
		}
	}
	double tu = now_s();
	if (e->reduce) {
		/* sums over workers: each holds its share of the global mean */
		double mm[2] = {bmin, -bmax};
		e->reduce(e->reduce_ctx, G, np, HG, hn, S, S_COUNT);
		e->reduce(e->reduce_ctx, NULL, 0, NULL, 0, mm, -2); /* nc < 0: a minimum of -nc values */
		bmin = mm[0];
		bmax = -mm[1];
	}
	const double S_n = S[S_N];
	double gn2 = (e->policy_trained ? be->sumsq(G, np) : 0) + (e->head_trained ? sumsq(HG, hn) : 0);
	double gnorm = sqrt(gn2);
	m->loss = S[S_LOSS];
	m->step = ck->step + 1;
	if (!isfinite(S[S_LOSS]) || !isfinite(gnorm) || !all_finite(HG, hn)) {
		m->nonfinite = isfinite(S[S_LOSS]) ? 2 : 1;
		return -1;
	}
	float cf = (float)clip_factor(gnorm, o->clip);
	double lr_p = sched_lr(o->schedule, o->lr, ck->step, o->warmup, o->total_steps);
	double lr_b = sched_lr(o->schedule, o->beta_lr, ck->step, o->warmup, o->total_steps);
	long t = ck->step + 1;
	const adamw_hp hp = {0.9, 0.999, 1e-8};
	if (e->policy_trained) {
		if (cf != 1.0f)
			be->scale(G, np, cf);
		float *P = model_trainable_dev(ck->m);
		for (int k = 0; k < model_n_trainable_tensors(ck->m); k++) {
			const model_tensor *mt = model_trainable_tensor_at(ck->m, k);
			be->adamw_update(P + mt->offset, G + mt->offset, e->dm + mt->offset, e->dv + mt->offset,
					 mt->numel, lr_p, mt->ndim == 2 ? o->weight_decay : 0.0, &hp, t);
		}
	}
	if (e->head_trained) {
		if (cf != 1.0f)
			scale_inplace(HG, hn, cf);
		adamw_update(ck->bh->p, HG, ck->hm, ck->hv, 1, lr_b, 0.0, &hp, t); /* log w: no decay */
		adamw_update(ck->bh->p + 1, HG + 1, ck->hm + 1, ck->hv + 1, hn - 1, lr_b, o->beta_wd, &hp, t);
	}
	ck->step = t;
	double t1 = now_s();
	double bmean = S[S_B] / S_n, bstd = sqrt(fmax(0, S[S_B2] / S_n - bmean * bmean));
	m->epoch = ck->epoch + (double)ck->pos / e->data->n;
	m->rewards_chosen = S[S_RC] / S_n;
	m->rewards_rejected = S[S_RR] / S_n;
	m->accuracy = S[S_ACC] / S_n;
	m->margin = (S[S_RC] - S[S_RR]) / S_n;
	m->logps_chosen = S[S_LC] / S_n;
	m->logps_rejected = S[S_LR] / S_n;
	m->grad_norm = gnorm;
	m->lr = lr_p;
	m->beta_lr = lr_b;
	m->beta_mean = bmean;
	m->beta_std = bstd;
	m->beta_min = bmin;
	m->beta_max = bmax;
	m->beta_w = e->learned ? exp((double)ck->bh->p[0]) : 0.0;
	m->ppl_prompt = S[S_PPL] / S_n;
	if (lo->kind == LOSS_REWARD) { /* over both sides' scores */
		const double rm = (S[S_RC] + S[S_RR]) / (2 * S_n);
		m->reward = 1;
		m->reward_mean = rm;
		m->reward_std = sqrt(fmax(0, S[S_R2] / (2 * S_n) - rm * rm));
	}
	m->tokens = S[S_TOK];
	m->seconds = t1 - t0;
	m->seconds_update = t1 - tu;
	return 0;
}

int train_metrics_kv(const train_metrics *m, metric_kv *kv)
{
	const metric_kv k[] = {
		{"epoch", m->epoch, "%.6f"},
		{"loss", m->loss, "%.9g"},
		{"rewards/chosen", m->rewards_chosen, "%.9g"},
		{"rewards/rejected", m->rewards_rejected, "%.9g"},
		{"rewards/accuracies", m->accuracy, "%.9g"},
		{"rewards/margins", m->margin, "%.9g"},
		{"logps/chosen", m->logps_chosen, "%.9g"},
		{"logps/rejected", m->logps_rejected, "%.9g"},
		{"grad_norm", m->grad_norm, "%.9g"},
		{"learning_rate", m->lr, "%.9g"},
		{"beta/lr", m->beta_lr, "%.9g"},
		{"beta/mean", m->beta_mean, "%.9g"},
		{"beta/std", m->beta_std, "%.9g"},
		{"beta/min", m->beta_min, "%.9g"},
		{"beta/max", m->beta_max, "%.9g"},
		{"beta/w", m->beta_w, "%.9g"},
		{"ppl/prompt", m->ppl_prompt, "%.9g"},
		{"tokens_per_s", m->tokens / (m->seconds > 0 ? m->seconds : 1e-9), "%.6g"},
	};
	int n = (int)(sizeof k / sizeof *k);
	memcpy(kv, k, sizeof k);
	if (m->reward) { /* a reward model's scores (--loss reward) */
		kv[n++] = (metric_kv){"reward/mean", m->reward_mean, "%.9g"};
		kv[n++] = (metric_kv){"reward/std", m->reward_std, "%.9g"};
	}
	return n;
}

int eval_metrics_kv(const res_summary *s, double epoch, metric_kv *kv)
{
	const metric_kv k[] = {
		{"epoch", epoch, "%.6f"},
		{"eval/loss", s->loss, "%.9g"},
		{"eval/rewards/chosen", s->rc, "%.9g"},
		{"eval/rewards/rejected", s->rr, "%.9g"},
		{"eval/rewards/accuracies", s->acc, "%.9g"},
		{"eval/rewards/margins", s->margin, "%.9g"},
		{"eval/logps/chosen", s->lc, "%.9g"},
		{"eval/logps/rejected", s->lr, "%.9g"},
		{"eval/beta/mean", s->bmean, "%.9g"},
		{"eval/beta/std", s->bstd, "%.9g"},
		{"eval/beta/min", s->bmin, "%.9g"},
		{"eval/beta/max", s->bmax, "%.9g"},
		{"eval/ppl/prompt", s->ppl, "%.9g"},
		{"eval/samples", s->n, "%.0f"},
	};
	int n = (int)(sizeof k / sizeof *k);
	memcpy(kv, k, sizeof k);
	return n;
}

int metrics_line_write(FILE *f, long step, const metric_kv *kv, int n, const char *run)
{
	int wr = fprintf(f, "{\"step\": %ld", step);
	for (int i = 0; i < n && wr >= 0; i++) {
		wr = fprintf(f, ", \"%s\": ", kv[i].key);
		if (wr >= 0)
			wr = fprintf(f, kv[i].fmt, kv[i].v);
	}
	if (wr >= 0)
		wr = fprintf(f, ", \"run\": \"%s\"}\n", run);
	return wr < 0 || fflush(f) != 0 || ferror(f) ? -1 : 0;
}

FILE *train_metrics_open(const char *path, const char *run, long step, int resumed, int legacy)
{
	struct stat sb;
	const int there = stat(path, &sb) == 0;
	if (!there && errno != ENOENT)
		die("%s: %s", path, strerror(errno));
	/* only a regular file holds earlier lines (not a pipe or a device) */
	FILE *f = there && S_ISREG(sb.st_mode) && sb.st_size > 0 ? fopen(path, "r") : NULL;
	if (there && S_ISREG(sb.st_mode) && sb.st_size > 0 && !f)
		die("%s: %s", path, strerror(errno));
	if (f && !resumed)
		die("%s: exists and is not empty: a fresh run would interleave its steps with an earlier "
		    "run's; remove it or name another --metrics FILE",
		    path);
	char *line = NULL, *keep = NULL;
	size_t cap = 0, kn = 0, kcap = 0;
	ssize_t n;
	long lineno = 0, dropped = 0;
	int partial = 0;
	while (f && (n = getline(&line, &cap, f)) > 0) {
		lineno++;
		json_error_t je;
		json_t *j = json_loadb(line, (size_t)n, 0, &je);
		if (!j && line[n - 1] != '\n') {
			partial = 1; /* the last line, cut short by a kill */
			break;
		}
		if (!j)
			die("%s: line %ld: not a JSON line: %s", path, lineno, je.text);
		const char *r = json_string_value(json_object_get(j, "run"));
		const json_t *st = json_object_get(j, "step");
		if (!json_is_integer(st))
			die("%s: line %ld: no integer \"step\"", path, lineno);
		if (r ? strcmp(r, run) != 0 : !legacy)
			die("%s: line %ld: written by another run (%s%.40s), not this one (run %s); name another "
			    "--metrics FILE",
			    path, lineno, r ? "run " : "", r ? r : "no run id", run);
		if (json_integer_value(st) > step) {
			dropped++;
		} else {
			xgrow((void **)&keep, &kcap, kn + (size_t)n + 1, 1);
			memcpy(keep + kn, line, (size_t)n);
			kn += (size_t)n;
		}
		json_decref(j);
	}
	if (f && ferror(f))
		die("%s: read error: %s", path, strerror(errno));
	if (f)
		fclose(f);
	free(line);
	if (dropped || partial) {
		/* the steps after the checkpoint's are done again: written once */
		outfile *o = out_open(path);
		if (kn && fwrite(keep, 1, kn, o->fp) != kn)
			die("%s: write error: %s", path, strerror(errno));
		out_close(o);
		info("%s: dropped %ld line%s past step %ld, the checkpoint's%s", path, dropped, dropped == 1 ? "" : "s",
		     step, partial ? ", and a cut last line" : "");
	}
	free(keep);
	FILE *a = fopen(path, "a");
	if (!a)
		die("%s: cannot open for appending: %s", path, strerror(errno));
	return a;
}

void train_save(train_engine *e, const char *dir, json_t *options)
{
	model_sync(e->ck->m, 0);
	backend_sync_down(e->be, e->ck->pm, e->dm, e->np * sizeof(float));
	backend_sync_down(e->be, e->ck->pv, e->dv, e->np * sizeof(float));
	ckpt_save(e->ck, dir, options);
}

void train_engine_free(train_engine *e)
{
	if (!e)
		return;
	e->be->free(e->G);
	backend_mirror_free(e->be, e->dm, e->ck->pm);
	backend_mirror_free(e->be, e->dv, e->ck->pv);
	free(e->HG);
	model_ws_free(e->ws);
	batch_free(e->bb);
	free(e->recs);
	free(e->slot);
	free(e->perm);
	free(e);
}
