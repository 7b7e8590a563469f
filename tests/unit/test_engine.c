/* test_engine.c — the training engine's seams: train_opts survives JSON both
 * ways, every enum name table inverts, and the reduce point of train_step
 * behaves as a data-parallel allreduce must (two workers, each on its share
 * of every micro-batch, give the single worker's step). */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>

#include "libcore/nn/backend.h"
#include "libcore/train/engine.h"
#include "tests/unit/model_testlib.h"

Test(engine, opts_json_round_trip)
{
	train_opts a, b;
	train_opts_default(&a);
	a.init = "some/model";
	a.ck = (ckpt_opts){.head = HEAD_MLP,
			   .head_hidden = 7,
			   .eps = 0.25,
			   .pool = POOL_MEAN,
			   .ppl_from = PPL_REF,
			   .seed = 12345678901LL};
	a.loss.kind = LOSS_BETADPO;
	a.loss.beta = 0.3;
	a.loss.label_smoothing = 0.1;
	a.loss.gamma = -0.7;
	a.loss.range_reg = 2.5;
	a.loss.beta_max = 3;
	a.batch_size = 5;
	a.grad_accum = 3;
	a.total_steps = 99;
	a.warmup = 4;
	a.schedule = SCHED_COSINE;
	a.lr = 1.25e-5;
	a.weight_decay = 0.01;
	a.clip = 0;
	a.beta_grad = BGRAD_HEAD;
	a.freeze_policy = 1;
	a.beta_init = 0.2;
	a.w_init = 0.003;
	a.n_records = 1000;
	json_t *ja = train_opts_to_json(&a);
	train_opts_default(&b);
	const char *bad = NULL;
	cr_assert_eq(train_opts_from_json(&b, ja, &bad), 0, "bad key %s", bad);
	json_t *jb = train_opts_to_json(&b);
	char *sa = json_dumps(ja, JSON_REAL_PRECISION(17)), *sb = json_dumps(jb, JSON_REAL_PRECISION(17));
	cr_expect_str_eq(sa, sb);
	cr_expect_str_eq(b.init, "some/model");
	cr_expect_eq(b.ck.head_hidden, 64,
		     "head_hidden is not recorded: the default stays"); /* beta_head.safetensors has it */
	cr_expect_eq(b.ck.pool, POOL_MEAN);
	cr_expect_eq(b.ck.seed, 12345678901ULL);
	cr_expect_eq(b.loss.kind, LOSS_BETADPO);
	cr_expect_eq(b.schedule, SCHED_COSINE);
	cr_expect_eq(b.beta_grad, BGRAD_HEAD);
	cr_expect_eq(b.freeze_policy, 1);
	cr_expect_eq(b.lr, 1.25e-5);
	cr_expect_eq(b.total_steps, 99);
	free(sa);
	free(sb);
	json_decref(ja);
	json_decref(jb);
}

Test(engine, opts_json_bad_types)
{
	train_opts o;
	const char *bad = NULL;
	const char *cases[][2] = {{"{\"lr\": \"x\"}", "lr"},
				  {"{\"batch_size\": 2.5}", "batch_size"},
				  {"{\"schedule\": \"sawtooth\"}", "schedule"},
				  {"{\"loss\": 3}", "loss"},
				  {"{\"freeze_policy\": 1}", "freeze_policy"}};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		json_t *j = json_loads(cases[i][0], 0, NULL);
		train_opts_default(&o);
		cr_expect_eq(train_opts_from_json(&o, j, &bad), -1, "%s accepted", cases[i][0]);
		cr_expect_str_eq(bad, cases[i][1]);
		json_decref(j);
	}
	train_opts_default(&o);
	cr_expect_eq(train_opts_from_json(&o, NULL, &bad), -1);
}

/* TRL's name of the DPO loss; the list in messages names every kind */
Test(engine, loss_alias_sigmoid)
{
	cr_expect_eq(loss_kind_parse("sigmoid"), LOSS_DPO);
	cr_expect_str_eq(loss_kind_name((loss_kind)loss_kind_parse("sigmoid")), "dpo");
	cr_expect_eq(loss_kind_parse("Sigmoid"), -1);
	for (int k = 0; k < LOSS_N_KINDS; k++)
		cr_expect_not_null(strstr(loss_kind_list(), loss_kind_name((loss_kind)k)));
}

Test(engine, enum_names_invert)
{
	for (int k = 0; k < LOSS_N_KINDS; k++)
		cr_expect_eq(loss_kind_parse(loss_kind_name((loss_kind)k)), k);
	for (int k = 0; k < 3; k++) {
		cr_expect_eq(sched_parse(sched_name((sched_kind)k)), k);
		cr_expect_eq(beta_grad_parse(beta_grad_name((beta_grad_mode)k)), k);
	}
	for (int k = 0; k < 2; k++) {
		cr_expect_eq(head_kind_parse(head_kind_name((head_kind)k)), k);
		cr_expect_eq(pool_kind_parse(pool_kind_name((pool_kind)k)), k);
		cr_expect_eq(ppl_source_parse(ppl_source_name((ppl_source)k)), k);
		cr_expect_eq(model_arch_parse(model_arch_name((model_arch)k)), k);
	}
	cr_expect_str_eq(sched_name((sched_kind)7), "?");
	cr_expect_str_eq(pool_kind_name((pool_kind)-1), "?");
	cr_expect_eq(beta_grad_parse(NULL), -1);
	cr_expect_eq(head_kind_parse("MLP"), -1);
}

/* ---- the reduce point ---- */

enum { NR = 6, LEN = 4, W = 2 };

/* W workers as threads, each with its own engine; the reduce hook is an
 * in-memory allreduce: every worker publishes its buffers, worker 0 sums
 * (or takes minima) into all of them, a barrier on each side. */
typedef struct {
	pthread_barrier_t bar;
	float *G[W], *HG[W];
	double *c[W];
	size_t n, hn;
	int calls;
} fake_mpi;

typedef struct {
	fake_mpi *f;
	int rank;
} fake_rank;

static void fake_allreduce(void *ctx, float *G, size_t n, float *HG, size_t hn, double *c, int nc)
{
	fake_rank *r = ctx;
	fake_mpi *f = r->f;
	f->G[r->rank] = G;
	f->HG[r->rank] = HG;
	f->c[r->rank] = c;
	pthread_barrier_wait(&f->bar);
	if (r->rank == 0) {
		f->calls++;
		if (nc > 0) {
			f->n = n;
			f->hn = hn;
			for (size_t i = 0; i < n; i++) {
				float s = 0;
				for (int w = 0; w < W; w++)
					s += f->G[w][i];
				for (int w = 0; w < W; w++)
					f->G[w][i] = s;
			}
			for (size_t i = 0; i < hn; i++) {
				float s = 0;
				for (int w = 0; w < W; w++)
					s += f->HG[w][i];
				for (int w = 0; w < W; w++)
					f->HG[w][i] = s;
			}
		}
		for (int i = 0; i < (nc > 0 ? nc : -nc); i++) {
			double s = nc > 0 ? 0 : INFINITY;
			for (int w = 0; w < W; w++)
				s = nc > 0 ? s + f->c[w][i] : fmin(s, f->c[w][i]);
			for (int w = 0; w < W; w++)
				f->c[w][i] = s;
		}
	}
	pthread_barrier_wait(&f->bar);
}

static ckpt *tiny_ckpt(void)
{
	ckpt *c = xcalloc(1, sizeof *c);
	model_config cfg = tl_cfg(ARCH_LLAMA, 2, 0, 0);
	c->m = tl_model(&cfg, 5);
	c->bh = betahead_new(HEAD_LINEAR, cfg.dim, 0, 0.5f);
	betahead_init(c->bh, 3, 0.5);
	size_t np = model_n_params(c->m);
	c->pm = xcalloc(np, sizeof(float));
	c->pv = xcalloc(np, sizeof(float));
	c->hm = xcalloc(c->bh->n_params, sizeof(float));
	c->hv = xcalloc(c->bh->n_params, sizeof(float));
	c->rng = 1;
	return c;
}

typedef struct {
	train_engine *e;
	train_metrics m[3];
} worker_run;

static void *run_worker(void *arg)
{
	worker_run *w = arg;
	for (int step = 0; step < 3; step++)
		cr_assert_eq(train_step(w->e, &w->m[step]), 0);
	return NULL;
}

static int rel_close(double a, double b, double tol) { return fabs(a - b) <= tol * fmax(fabs(a), 1e-30); }

/* Two workers that split each micro-batch of 3 pairs 2 + 1 and sum at the
 * reduce point make the one-worker step: the same metrics and weights up
 * to the float summation order (1e-5 relative), and identical weights on
 * both workers. kind/group_reg: a loss that needs the whole micro-batch
 * (beta-dpo, --group-reg) also shares each micro-batch's per-pair scalars
 * through the hook (calls: reduce calls expected over the 3 steps).
 * list/weights: a --loss list instead of kind; learned: --learned-beta. */
static void two_workers_loss(loss_kind kind, double group_reg, const char *list, const char *weights, int learned,
			     int calls)
{
	uint32_t toks[NR][3][LEN];
	pref_rec recs[NR];
	uint64_t s = 11;
	memset(recs, 0, sizeof recs);
	for (int i = 0; i < NR; i++) {
		for (int k = 0; k < 3; k++)
			for (int t = 0; t < LEN; t++)
				toks[i][k][t] = (uint32_t)(rng_next(&s) % 20);
		recs[i] = (pref_rec){.prompt = toks[i][0],
				     .np = LEN,
				     .chosen = toks[i][1],
				     .nc = LEN - 1,
				     .rejected = toks[i][2],
				     .nr = LEN,
				     .has_ref = 1,
				     .ref_c = -9 + 0.1 * i,
				     .ref_r = -10 - 0.1 * i,
				     .group = group_reg != 0 ? i % 2 : -1,
				     .index = (uint64_t)i + 1};
	}
	pref_set data = {.r = recs, .n = NR, .name = "t"};
	train_opts o;
	train_opts_default(&o);
	o.init = "t";
	o.batch_size = 3;
	o.grad_accum = 2;
	o.lr = 1e-4;
	o.beta_lr = 1e-2;
	o.total_steps = 10;
	o.loss.kind = kind;
	o.loss.group_reg = group_reg;
	o.loss.learned_beta = learned;
	char err[256];
	if (list)
		cr_assert_eq(loss_opts_set(&o.loss, list, weights, err, sizeof err), 0, "%s", err);
	ckpt *c1 = tiny_ckpt(), *cw[W];
	train_engine *e1 = train_engine_new(c1, &data, &o);
	fake_mpi f = {.calls = 0};
	pthread_barrier_init(&f.bar, NULL, W);
	fake_rank fr[W];
	worker_run wr[W];
	pthread_t th[W];
	for (int w = 0; w < W; w++) {
		cw[w] = tiny_ckpt();
		wr[w].e = train_engine_new(cw[w], &data, &o);
		fr[w] = (fake_rank){&f, w};
		train_engine_set_worker(wr[w].e, w, W);
		train_engine_set_reduce(wr[w].e, fake_allreduce, &fr[w]);
		cr_assert_eq(pthread_create(&th[w], NULL, run_worker, &wr[w]), 0);
	}
	for (int w = 0; w < W; w++)
		pthread_join(th[w], NULL);
	pthread_barrier_destroy(&f.bar);
	for (int step = 0; step < 3; step++) {
		train_metrics m1;
		cr_assert_eq(train_step(e1, &m1), 0);
		const train_metrics *m2 = &wr[0].m[step];
		cr_expect(rel_close(m1.loss, m2->loss, 1e-6), "step %d: loss %.17g vs %.17g", step, m1.loss, m2->loss);
		cr_expect(rel_close(m1.beta_mean, m2->beta_mean, 1e-6), "step %d: beta_mean %.17g vs %.17g", step,
			  m1.beta_mean, m2->beta_mean);
		cr_expect(rel_close(m1.beta_min, m2->beta_min, 1e-5), "step %d: beta_min %.17g vs %.17g", step,
			  m1.beta_min, m2->beta_min);
		cr_expect(rel_close(m1.margin, m2->margin, 1e-6));
		cr_expect(rel_close(m1.grad_norm, m2->grad_norm, 1e-5), "step %d: grad_norm %.9g vs %.9g", step,
			  m1.grad_norm, m2->grad_norm);
		cr_expect_eq(m1.accuracy, m2->accuracy);
		cr_expect_eq(m1.tokens, m2->tokens, "tokens are summed over workers");
		cr_expect_eq(m1.epoch, m2->epoch);
		cr_expect_gt(m1.grad_norm, 0);
	}
	cr_expect_eq(f.calls, calls, "reduce calls: %d", f.calls);
	cr_expect_eq(f.n, model_n_params(c1->m));
	cr_expect_eq(f.hn, c1->bh->n_params);
	cr_expect_eq(c1->step, 3);
	cr_expect_eq(cw[1]->pos, c1->pos, "the data position is global");
	cr_expect_eq(cw[1]->rng, c1->rng, "beta-dpo's sampling state advances alike");
	cr_expect_eq(cw[1]->bs.n_updates, c1->bs.n_updates);
	cr_expect(rel_close(cw[1]->bs.m0, c1->bs.m0, 1e-6), "beta-dpo m0 %.17g vs %.17g", cw[1]->bs.m0, c1->bs.m0);
	cr_expect(rel_close(cw[1]->bs.sd, c1->bs.sd, 1e-6), "beta-dpo sd %.17g vs %.17g", cw[1]->bs.sd, c1->bs.sd);
	size_t np = model_n_params(c1->m);
	cr_expect_eq(memcmp(model_params(cw[0]->m), model_params(cw[1]->m), np * sizeof(float)), 0,
		     "the workers hold the same weights");
	const float *p1 = model_params(c1->m), *p2 = model_params(cw[0]->m);
	double dmax = 0, amax = 0;
	for (size_t i = 0; i < np; i++) {
		dmax = fmax(dmax, fabs((double)p1[i] - p2[i]));
		amax = fmax(amax, fabs((double)p1[i]));
	}
	cr_expect_leq(dmax, 1e-5 * amax, "policy weights: max diff %g, max |w| %g", dmax, amax);
	for (size_t i = 0; i < c1->bh->n_params; i++)
		cr_expect(rel_close(c1->bh->p[i], cw[0]->bh->p[i], 1e-5) || fabs(c1->bh->p[i] - cw[0]->bh->p[i]) < 1e-7,
			  "beta head %zu: %.9g vs %.9g", i, c1->bh->p[i], cw[0]->bh->p[i]);
	train_engine_free(e1);
	for (int w = 0; w < W; w++)
		train_engine_free(wr[w].e);
	for (int i = 0; i <= W; i++) {
		ckpt *c = i ? cw[i - 1] : c1;
		c->state = NULL;
		ckpt_free(c);
	}
}

static void two_workers_make_one(loss_kind kind, double group_reg, int calls)
{
	two_workers_loss(kind, group_reg, NULL, NULL, 0, calls);
}

/* two calls per step: the gradient sums and the β extremes */
Test(engine, reduce_point_is_an_allreduce) { two_workers_make_one(LOSS_LBDPO, 0, 6); }
/* and one per micro-batch (2 a step) for the per-pair scalars */
Test(engine, reduce_point_beta_dpo) { two_workers_make_one(LOSS_BETADPO, 0, 12); }
Test(engine, reduce_point_group_reg) { two_workers_make_one(LOSS_LBDPO, 0.5, 12); }
/* a list whose aot_unpaired sorts the whole micro-batch shares it */
Test(engine, reduce_point_aot_list) { two_workers_loss(LOSS_DPO, 0, "dpo,aot_unpaired,sft", "0.5,1,0.2", 0, 12); }
/* the β head driving a list of other β-losses, and its group regularizer */
Test(engine, reduce_point_learned_list) { two_workers_loss(LOSS_DPO, 0, "nca_pair,apo_down", "1,2", 1, 6); }
Test(engine, reduce_point_learned_group_reg) { two_workers_loss(LOSS_BCO_PAIR, 0.5, NULL, NULL, 1, 12); }

/* a list, its weights, --learned-beta and --discopop-tau go through the
 * checkpoint's options; a single loss writes none of the new keys */
Test(engine, opts_json_loss_list)
{
	train_opts a, b;
	char err[256], names[512];
	train_opts_default(&a);
	json_t *j0 = train_opts_to_json(&a);
	cr_expect(!json_object_get(j0, "loss_weights") && !json_object_get(j0, "learned_beta") &&
		  !json_object_get(j0, "discopop_tau"));
	json_decref(j0);
	cr_assert_eq(loss_opts_set(&a.loss, "dpo,bco_pair,sft,discopop", "0.8,0.2,1,0.1", err, sizeof err), 0);
	a.loss.learned_beta = 1;
	a.loss.discopop_tau = 0.3;
	json_t *ja = train_opts_to_json(&a);
	train_opts_default(&b);
	const char *bad = NULL;
	cr_assert_eq(train_opts_from_json(&b, ja, &bad), 0, "bad key %s", bad);
	cr_expect_str_eq(loss_opts_names(&b.loss, names, sizeof names), "dpo,bco_pair,sft,discopop");
	cr_expect_eq(b.loss.n_terms, 4);
	cr_expect(b.loss.term_w[0] == 0.8 && b.loss.term_w[1] == 0.2 && b.loss.term_w[3] == 0.1);
	cr_expect_eq(b.loss.learned_beta, 1);
	cr_expect_eq(b.loss.discopop_tau, 0.3);
	json_decref(ja);
	const char *badj[] = {"{\"loss\": \"dpo,nope\"}", "{\"loss\": \"dpo,sft\", \"loss_weights\": [1]}",
			      "{\"loss\": \"dpo,sft\", \"loss_weights\": \"1,1\"}"};
	for (size_t i = 0; i < sizeof badj / sizeof *badj; i++) {
		json_t *j = json_loads(badj[i], 0, NULL);
		train_opts_default(&b);
		cr_expect_eq(train_opts_from_json(&b, j, &bad), -1, "%s accepted", badj[i]);
		cr_expect_str_eq(bad, "loss");
		json_decref(j);
	}
}

/* A non-finite loss stops the step before anything is updated. */
Test(engine, nonfinite_step_changes_nothing)
{
	uint32_t p[3] = {1, 2, 3}, ch[2] = {4, 5}, rj[2] = {6, 7};
	pref_rec r = {.prompt = p,
		      .np = 3,
		      .chosen = ch,
		      .nc = 2,
		      .rejected = rj,
		      .nr = 2,
		      .has_ref = 1,
		      .ref_c = NAN,
		      .ref_r = -3,
		      .group = -1,
		      .index = 1};
	pref_set data = {.r = &r, .n = 1, .name = "t"};
	train_opts o;
	train_opts_default(&o);
	o.init = "t";
	o.batch_size = 1;
	o.loss.kind = LOSS_DPO;
	o.total_steps = 1;
	ckpt *c = tiny_ckpt();
	size_t np = model_n_params(c->m);
	float *before = xmalloc(np * sizeof(float));
	memcpy(before, model_params(c->m), np * sizeof(float));
	train_engine *e = train_engine_new(c, &data, &o);
	train_metrics m;
	cr_expect_eq(train_step(e, &m), -1);
	cr_expect_eq(m.nonfinite, 1);
	cr_expect_eq(c->step, 0);
	cr_expect_eq(memcmp(before, model_params(c->m), np * sizeof(float)), 0);
	free(before);
	train_engine_free(e);
	ckpt_free(c);
}
