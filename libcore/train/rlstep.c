/* rlstep.c — see rlstep.h. One call is one PPO iteration of TRL's loop
 * after generation: the rollouts' log-probs under the sampling policy
 * (the records' token_logps, else a forward of -m), the reference's (a
 * forward of --ref), the values of the value model (PPO), the rewards and
 * advantages (rl.c), then --epochs passes over --mini-batches shuffled
 * mini-batches, each one AdamW step of the policy (and of the value model)
 * on the clipped losses. The per-token gradients go down through
 * model_seq_grad.d_tok_logp / d_tok_value (logit_grad_rows' row weights).
 * The output is a checkpoint (checkpoint.c) with the AdamW moments and step
 * count: the next call from it continues one optimizer over the whole run,
 * as TRL's loop does, and each call is still a self-contained stage of
 * pipelines/ppo.mk. Under mpirun every rank reads all rollouts and holds
 * the whole batch's per-token numbers (each rank scores its share, the
 * shares are summed), so the advantages, their whitening and the group
 * statistics are the one-process ones; in each mini-batch rank r forwards
 * and backs rows i ≡ r (mod ranks), the per-token log-probs are summed
 * over ranks before the loss (a mini-batch's token mean spans all its
 * rows), and the gradients after. */
#include "libcore/train/rlstep.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"
#include "formats/jsonl.h"
#include "formats/refcache.h"
#include "libcore/nn/adamw.h"
#include "libcore/nn/backend.h"
#include "libcore/nn/model.h"
#include "formats/safetensors.h"
#include "libcore/dist/dist.h"
#include "libcore/objective/rl.h"
#include "libcore/train/checkpoint.h"
#include "libcore/train/data.h"
#include "libcore/train/engine.h"
#include "libcore/train/parallel.h"

const char *const rl_algo_names[] = {"ppo", "grpo", "rloo", NULL};

int rl_algo_parse(const char *name)
{
	return !strcmp(name, "ppo") ? RL_PPO : !strcmp(name, "grpo") ? RL_GRPO : !strcmp(name, "rloo") ? RL_RLOO : -1;
}

const char *rl_algo_name(rl_algo a) { return a == RL_PPO ? "ppo" : a == RL_GRPO ? "grpo" : "rloo"; }

int rl_state_algo(const json_t *state)
{
	const char *l = json_string_value(json_object_get(json_object_get(state, "options"), "loss"));
	return l ? rl_algo_parse(l) : -1;
}

void rl_opts_default(rl_opts *o)
{
	memset(o, 0, sizeof *o);
	o->in = "-";
	o->lr = 1e-5;
	o->value_lr = -1; /* = lr */
	o->clip = 1.0;
	o->kl_coef = -1;
	o->kl_horizon = 10000;
	o->eps = 0.2;
	o->eps_v = 0.2;
	o->vf_coef = 0.1;
	o->gamma = 1.0;
	o->lam = 0.95;
	o->eos_penalty = -1;
	o->epochs = -1;
	o->mini_batches = 1;
	o->G = 0;
	o->scale_rewards = 1;
	o->agg_seq = 1;
	o->seed = 1;
}

/* one rollout */
typedef struct {
	uint32_t *prompt, *comp; /* comp: ids, then the stop token when it stopped at one */
	int np, n, has_eos;
	double reward;
	double *lp_old, *lp_ref; /* [n] (NULL until known) */
	uint64_t line;
	uint8_t key[32]; /* rl_rollout_logprobs' cache key */
} rollout;

static uint32_t *id_array(json_t *a, int *n, int extra, const char *name, uint64_t line, const char *key, int V)
{
	if (!json_is_array(a))
		die("%s: line %llu: \"%s\" must be an array of token ids", name, (unsigned long long)line, key);
	*n = (int)json_array_size(a);
	uint32_t *ids = xmalloc(sizeof *ids * ((size_t)*n + extra + 1));
	for (int i = 0; i < *n; i++) {
		json_t *v = json_array_get(a, i);
		json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
		if (x < 0 || x >= V)
			die("%s: line %llu: \"%s\"[%d]: not a token id of the model (vocabulary %d)", name,
			    (unsigned long long)line, key, i, V);
		ids[i] = (uint32_t)x;
	}
	return ids;
}

static double *num_array(json_t *a, int n, const char *name, uint64_t line, const char *key)
{
	if (!a)
		return NULL;
	if (!json_is_array(a) || (int)json_array_size(a) != n)
		die("%s: line %llu: \"%s\" must hold %d numbers (one per completion token and the stop token)", name,
		    (unsigned long long)line, key, n);
	double *x = xmalloc(sizeof *x * (size_t)(n ? n : 1));
	for (int i = 0; i < n; i++) {
		json_t *v = json_array_get(a, i);
		if (!json_is_number(v))
			die("%s: line %llu: \"%s\"[%d] is not a number", name, (unsigned long long)line, key, i);
		x[i] = json_number_value(v);
	}
	return x;
}

/* every line of r; objs (may be NULL) gets each line's JSON object */
static rollout *read_rollouts_from(jsonl *r, int V, int max_pos, int *n_out, json_t ***objs)
{
	const char *name = jsonl_name(r), *line;
	size_t len;
	rollout *ro = NULL;
	size_t n = 0, cap = 0, ocap = 0;
	int rc;
	while ((rc = jsonl_next(r, &line, &len)) > 0) {
		uint64_t ln = jsonl_lineno(r);
		char err[256];
		json_t *j = jsonl_parse(line, len, err, sizeof err); /* the project's rules: U+0000 in a text is fine */
		if (!j)
			die("%s: line %llu: %s", name, (unsigned long long)ln, err);
		xgrow((void **)&ro, &cap, n + 1, sizeof *ro);
		rollout *x = &ro[n++];
		memset(x, 0, sizeof *x);
		x->line = ln;
		json_t *pi = json_object_get(j, "prompt_ids"), *ids = json_object_get(j, "ids"),
		       *eos = json_object_get(j, "eos_id"), *rw = json_object_get(j, "reward");
		if (!pi && !ids && json_object_get(j, "chosen"))
			die("%s: line %llu: this looks like preference JSONL (\"chosen\"), not rollouts: run "
			    "lbdpo-tokenize first (or write rollouts with lbdpo-sample --logprobs)",
			    name, (unsigned long long)ln);
		if (!pi || !ids)
			die("%s: line %llu: no \"prompt_ids\" and \"ids\" (write rollouts with lbdpo-sample --logprobs)",
			    name, (unsigned long long)ln);
		if (!json_is_number(rw))
			die("%s: line %llu: no number \"reward\" (score the rollouts with lbdpo-reward or a judge)",
			    name, (unsigned long long)ln);
		x->reward = json_number_value(rw);
		x->prompt = id_array(pi, &x->np, 0, name, ln, "prompt_ids", V);
		if (x->np < 1)
			die("%s: line %llu: empty \"prompt_ids\"", name, (unsigned long long)ln);
		x->comp = id_array(ids, &x->n, 1, name, ln, "ids", V);
		if (eos && !json_is_null(eos)) {
			json_int_t e = json_is_integer(eos) ? json_integer_value(eos) : -1;
			if (e < 0 || e >= V)
				die("%s: line %llu: \"eos_id\": not a token id of the model", name,
				    (unsigned long long)ln);
			x->comp[x->n++] = (uint32_t)e;
			x->has_eos = 1;
		}
		if (x->np + x->n > max_pos)
			die("%s: line %llu: prompt and completion of %d tokens exceed the model's %d positions", name,
			    (unsigned long long)ln, x->np + x->n, max_pos);
		x->lp_old = num_array(json_object_get(j, "token_logps"), x->n, name, ln, "token_logps");
		x->lp_ref = num_array(json_object_get(j, "ref_token_logps"), x->n, name, ln, "ref_token_logps");
		if (objs) {
			xgrow((void **)objs, &ocap, n, sizeof **objs);
			(*objs)[n - 1] = j;
		} else {
			json_decref(j);
		}
	}
	if (rc < 0)
		die("%s: %s", name, jsonl_error(r));
	if (n == 0)
		die("%s: no rollouts", name);
	*n_out = (int)n;
	return ro;
}

static rollout *read_rollouts(const char *path, int V, int max_pos, int *n_out)
{
	jsonl *r = jsonl_open(path);
	rollout *ro = read_rollouts_from(r, V, max_pos, n_out, NULL);
	jsonl_close(r);
	return ro;
}

/* per-token log-probs (m an LM) or values (m a value model) of rollouts
 * idx[0..k) into out[r][0..n) (double), batched */
static void score_rows(model *m, model_ws *ws, rollout *ro, const int *idx, int k, double **out, int values)
{
	const int CH = 32;
	model_seq sq[32];
	model_scores sc[32];
	float *buf[32];
	for (int a = 0; a < k; a += CH) {
		int b = 0;
		for (int r = a; r < k && r < a + CH; r++) {
			rollout *x = &ro[idx[r]];
			if (x->n == 0)
				continue;
			buf[b] = xmalloc(sizeof(float) * (size_t)x->n);
			sq[b] = (model_seq){.prompt = x->prompt,
					    .n_prompt = x->np,
					    .comp = {x->comp},
					    .n_comp_tok = {x->n},
					    .n_comp = 1};
			sc[b] = (model_scores){0};
			if (values)
				sc[b].tok_value = buf[b];
			else
				sc[b].tok_logp[0] = buf[b];
			b++;
		}
		if (b)
			model_forward(m, ws, sq, b, sc, 0);
		b = 0;
		for (int r = a; r < k && r < a + CH; r++) {
			rollout *x = &ro[idx[r]];
			if (x->n == 0)
				continue;
			for (int t = 0; t < x->n; t++)
				out[r][t] = buf[b][t];
			free(buf[b++]);
		}
	}
}

/* score_rows of this rank's share of the N rollouts (i ≡ rank mod ranks)
 * into rows i of x [N, T] (zero elsewhere), summed over ranks: every rank
 * gets every row */
static void score_all(model *m, model_ws *ws, rollout *ro, int N, int T, double *x, int values)
{
	int k = 0, *idx = xmalloc(sizeof(int) * N);
	double **rowp = xmalloc(sizeof(double *) * N);
	for (int i = dist_rank(); i < N; i += dist_size()) {
		idx[k] = i;
		rowp[k++] = x + (size_t)i * T;
	}
	score_rows(m, ws, ro, idx, k, rowp, values);
	dist_allreduce_sum_f64(x, (size_t)N * T);
	free(idx), free(rowp);
}

/* A rank with no row of a mini-batch that others forward: the LoRA dropout
 * counter advances as theirs (and one process's) does, so every rank saves
 * the same trainer state. */
static void skip_forward(model *m)
{
	if (model_lora(m))
		lora_next_forward(model_lora(m), 1);
}

/* AdamW over every trainable tensor of m (its adapter's under LoRA) with
 * the gradient G (device) summed over ranks, after global norm clipping;
 * returns the norm (NAN: not finite, nothing updated). */
static double opt_step(model *m, float *G, float *dm, float *dv, long t, double lr, double wd, double clip)
{
	const lb_backend *be = model_backend(m);
	size_t np = model_n_trainable(m);
	dist_allreduce_sum_dev(be, G, np);
	double gn = sqrt(be->sumsq(G, np));
	if (!isfinite(gn))
		return NAN;
	float cf = (float)clip_factor(gn, clip);
	if (cf != 1.0f)
		be->scale(G, np, cf);
	const adamw_hp hp = {0.9, 0.999, 1e-8};
	float *P = model_trainable_dev(m);
	for (int k = 0; k < model_n_trainable_tensors(m); k++) {
		const model_tensor *mt = model_trainable_tensor_at(m, k);
		be->adamw_update(P + mt->offset, G + mt->offset, dm + mt->offset, dv + mt->offset, mt->numel, lr,
				 mt->ndim == 2 ? wd : 0.0, &hp, t);
	}
	return gn;
}

/* a model being trained: its gradient and AdamW moments on the device,
 * mirrors of the host moments hm, hv (what a checkpoint holds), and the
 * optimizer steps done */
typedef struct {
	model *m;
	model_ws *ws;
	float *G, *dm, *dv, *hm, *hv;
	long t;
} trained;

static void trained_open(trained *tr, model *m, float *hm, float *hv, long t)
{
	const lb_backend *be = model_backend(m);
	size_t bytes = model_n_trainable(m) * sizeof(float);
	tr->m = m;
	tr->ws = model_ws_new(m);
	tr->G = be->alloc(bytes);
	tr->hm = hm, tr->hv = hv;
	tr->dm = backend_mirror(be, hm, bytes);
	tr->dv = backend_mirror(be, hv, bytes);
	tr->t = t;
}

/* the moments back into hm, hv (host) and the model's weights */
static void trained_sync_down(trained *tr)
{
	const lb_backend *be = model_backend(tr->m);
	size_t bytes = model_n_trainable(tr->m) * sizeof(float);
	model_sync(tr->m, 0);
	backend_sync_down(be, tr->hm, tr->dm, bytes);
	backend_sync_down(be, tr->hv, tr->dv, bytes);
}

static void trained_close(trained *tr)
{
	const lb_backend *be = model_backend(tr->m);
	be->free(tr->G);
	backend_mirror_free(be, tr->dm, tr->hm);
	backend_mirror_free(be, tr->dv, tr->hv);
	model_ws_free(tr->ws);
}

/* Does the checkpoint dir continue as a --loss a run (an earlier call's
 * output: its trainer state's options name the loss)? */
static int rl_continues(const char *dir, rl_algo a)
{
	if (!ckpt_is(dir))
		return 0;
	char *sp = path_join(dir, "trainer_state.json");
	json_error_t je;
	json_t *st = json_load_file(sp, JSON_REJECT_DUPLICATES, &je);
	if (!st)
		die("%s: line %d: %s", sp, je.line, je.text);
	int r = rl_state_algo(st) == (int)a;
	json_decref(st);
	free(sp);
	return r;
}

/* The value model's moments and step, kept in its directory's
 * optimizer.safetensors ("value.m", "value.v", metadata "step") by an
 * earlier PPO call: read into m, v [n]; 0 when dir holds none. */
static int value_state_load(const char *dir, float *m, float *v, size_t n, long *t)
{
	char *op = path_join(dir, "optimizer.safetensors");
	struct stat sb;
	int got = 0;
	if (stat(op, &sb) == 0) {
		st_file *f = st_open(op);
		if (st_find(f, "value.m")) {
			const char *ts = st_meta(f, "step");
			char *end = NULL;
			long s = ts ? strtol(ts, &end, 10) : -1;
			if (!ts || *end || s < 0)
				die("%s: no metadata \"step\" (a whole number) with value.m", op);
			st_read_f32(f, "value.m", m, n);
			st_read_f32(f, "value.v", v, n);
			*t = s;
			got = 1;
		}
		st_close(f);
	}
	free(op);
	return got;
}

/* what ckpt_save writes besides the checkpoint: the value model with its
 * moments, and rl_state.json */
typedef struct {
	trained *val;
	double next_kl_coef;
} rl_extra;

static void save_extra(void *arg, const char *tmp)
{
	rl_extra *x = arg;
	if (x->val->m) {
		char *vd = path_join(tmp, "value");
		model_save_hf(x->val->m, vd);
		size_t n = model_n_trainable(x->val->m);
		char step[32];
		snprintf(step, sizeof step, "%ld", x->val->t);
		const char *meta[] = {"step", step, NULL};
		st_tensor_out t[2] = {{"value.m", 1, {(int64_t)n}, x->val->hm},
				      {"value.v", 1, {(int64_t)n}, x->val->hv}};
		char *op = path_join(vd, "optimizer.safetensors");
		st_save(op, t, 2, meta);
		free(op);
		free(vd);
	}
	char *sp = path_join(tmp, "rl_state.json");
	json_t *sj = json_pack("{s:f}", "kl_coef", x->next_kl_coef);
	if (json_dump_file(sj, sp, JSON_COMPACT) != 0)
		die("%s: cannot write", sp);
	json_decref(sj);
	free(sp);
}

/* the rollouts as read, for the ranks' check that they read the same */
static void rollouts_hash(const rollout *ro, int N, char out[65])
{
	sha256_ctx *h = sha256_new();
	for (int i = 0; i < N; i++) {
		const rollout *x = &ro[i];
		int hdr[3] = {x->np, x->n, x->has_eos};
		sha256_update(h, hdr, sizeof hdr);
		sha256_update(h, &x->reward, sizeof x->reward);
		sha256_update(h, x->prompt, sizeof(uint32_t) * x->np);
		sha256_update(h, x->comp, sizeof(uint32_t) * x->n);
		if (x->lp_old)
			sha256_update(h, x->lp_old, sizeof(double) * x->n);
		if (x->lp_ref)
			sha256_update(h, x->lp_ref, sizeof(double) * x->n);
	}
	sha256_final_hex(h, out);
}

/* the metrics, summed over mini-batch steps */
enum { M_PG, M_VF, M_CLIP, M_VCLIP, M_AKL, M_RATIO, M_KL, M_PTX, M_GN, M_N };

void rl_train(const rl_opts *o)
{
	const int ppo = o->algo == RL_PPO, rank = dist_rank(), nr = dist_size();
	double kl_coef = o->kl_coef >= 0 ? o->kl_coef : o->algo == RL_GRPO ? 0.0 : 0.05; /* TRL's defaults */
	int epochs = o->epochs > 0 ? o->epochs : ppo ? 4 : 1;
	struct stat sb;
	if (stat(o->out, &sb) == 0)
		dist_die_same(EXIT_DATA, "%s: exists; lbdpo-step --loss %s writes a new policy directory", o->out,
			      rl_algo_name(o->algo));
	const char *sdir = o->adapter ? o->adapter : o->policy; /* an earlier call's state */
	char *st_path = path_join(sdir, "rl_state.json");
	if (o->kl_target > 0 && stat(st_path, &sb) == 0) { /* the adaptive coefficient goes on */
		json_error_t err;
		json_t *s = json_load_file(st_path, 0, &err);
		json_t *v = s ? json_object_get(s, "kl_coef") : NULL;
		if (!json_is_number(v))
			die("%s: no number \"kl_coef\"", st_path);
		kl_coef = json_number_value(v);
		json_decref(s);
	}
	free(st_path);

	/* the policy (or its adapter) and, from an earlier call's output, the
	 * optimizer state: moments and step */
	ckpt_opts co;
	ckpt_opts_default(&co);
	co.seed = o->seed;
	co.master = 1;
	co.adapter = o->adapter;
	co.lora = o->lora;
	co.fresh = o->fresh || !rl_continues(sdir, o->algo);
	ckpt *ck = ckpt_load(o->policy, &co);
	model *m = ck->m;
	model_need_lm(m, o->policy);
	const model_config *cfg = model_cfg(m);
	int N;
	rollout *ro = read_rollouts(o->in, cfg->vocab_size, cfg->max_seq_len, &N);
	if (nr > 1) {
		char h[65];
		rollouts_hash(ro, N, h);
		dp_check_same("the rollouts read", h);
		dp_params_hash(ck, h);
		dp_check_same("the policy loaded from --model", h);
	}
	int G = o->G > 0 ? o->G : 1;
	if (!ppo) {
		if (o->G <= 0) /* the samples of one prompt are consecutive (lbdpo-sample --n) */
			for (G = 1; G < N && ro[G].np == ro[0].np &&
				    !memcmp(ro[G].prompt, ro[0].prompt, sizeof(uint32_t) * ro[0].np);)
				G++;
		if (G < 2 || N % G)
			die("%s: %d rollouts do not make groups of %d samples per prompt (--num-generations; %s needs >= 2)",
			    o->in, N, G, rl_algo_name(o->algo));
		for (int g = 0; g < N; g += G)
			for (int j = g + 1; j < g + G; j++)
				if (ro[j].np != ro[g].np ||
				    memcmp(ro[j].prompt, ro[g].prompt, sizeof(uint32_t) * ro[g].np))
					die("%s: line %llu: not the prompt of line %llu: a group is %d consecutive samples of one prompt",
					    o->in, (unsigned long long)ro[j].line, (unsigned long long)ro[g].line, G);
	}
	int T = 1;
	for (int i = 0; i < N; i++)
		T = ro[i].n > T ? ro[i].n : T;
	const size_t NT = (size_t)N * T;
	int *len = xmalloc(sizeof(int) * N), *has_eos = xmalloc(sizeof(int) * N);
	double *lp_old = xcalloc(NT, sizeof(double)), *lp_ref = xcalloc(NT, sizeof(double));
	for (int i = 0; i < N; i++)
		len[i] = ro[i].n, has_eos[i] = ro[i].has_eos;

	/* log-probs of the sampling policy and the reference */
	trained pol;
	trained_open(&pol, m, ck->pm, ck->pv, ck->step);
	int missing = 0;
	for (int i = 0; i < N; i++)
		missing |= !ro[i].lp_old;
	if (missing)
		score_all(m, pol.ws, ro, N, T, lp_old, 0);
	for (int i = 0; i < N; i++)
		for (int t = 0; t < ro[i].n; t++) {
			if (ro[i].lp_old)
				lp_old[(size_t)i * T + t] = ro[i].lp_old[t];
			if (!o->ref)
				lp_ref[(size_t)i * T + t] = lp_old[(size_t)i * T + t]; /* no reference: KL 0 */
		}
	if (o->ref) {
		model *rm = model_load_frozen(o->ref); /* only scored */
		model_need_lm(rm, o->ref);
		if (model_cfg(rm)->vocab_size != cfg->vocab_size)
			die("%s: vocabulary %d, the policy's is %d", o->ref, model_cfg(rm)->vocab_size,
			    cfg->vocab_size);
		model_ws *rws = model_ws_new(rm);
		score_all(rm, rws, ro, N, T, lp_ref, 0);
		model_ws_free(rws);
		model_free(rm);
	} else {
		int have = 1;
		for (int i = 0; i < N; i++)
			have &= ro[i].lp_ref != NULL;
		if (!have && kl_coef > 0)
			warning("no --ref and no ref_token_logps: the KL to the reference is taken as 0");
	}
	for (int i = 0; i < N; i++) /* the records' own reference log-probs win */
		for (int t = 0; ro[i].lp_ref && t < ro[i].n; t++)
			lp_ref[(size_t)i * T + t] = ro[i].lp_ref[t];

	/* rewards and advantages */
	double *score = xmalloc(sizeof(double) * N), *adv = xcalloc(NT, sizeof(double)), *ret = NULL, *val = NULL;
	double *nons = xcalloc(NT, sizeof(double)), *seqkl = xmalloc(sizeof(double) * N);
	for (int i = 0; i < N; i++)
		score[i] = ro[i].reward;
	rl_seq_kl(seqkl, lp_old, lp_ref, len, N, T);
	trained val_m = {0};
	float *vhm = NULL, *vhv = NULL;
	if (ppo) {
		if (o->eos_penalty >= 0)
			rl_eos_penalty(score, has_eos, N, o->eos_penalty);
		model *vm;
		if (o->value) {
			vm = model_load(o->value);
			if (!model_cfg(vm)->score_labels)
				die("%s: not a value model (a reward model: XxxForSequenceClassification with one label)",
				    o->value);
		} else {
			/* from the policy (under LoRA its base), a zero head: V = 0 at first */
			vm = model_reward_from(m, o->seed, 0.0f);
		}
		/* the value model's moments go on from the call that wrote it */
		size_t vn = model_n_trainable(vm);
		long vt = 0;
		vhm = xcalloc(vn, sizeof(float)), vhv = xcalloc(vn, sizeof(float));
		if (o->value && !o->fresh)
			value_state_load(o->value, vhm, vhv, vn, &vt);
		trained_open(&val_m, vm, vhm, vhv, vt);
		if (nr > 1) {
			char h[65];
			dp_model_hash(vm, h);
			dp_check_same("the value model", h);
		}
		val = xcalloc(NT, sizeof(double));
		ret = xcalloc(NT, sizeof(double));
		score_all(vm, val_m.ws, ro, N, T, val, 1);
		double *rew = xcalloc(NT, sizeof(double));
		rl_token_rewards(rew, nons, lp_old, lp_ref, score, len, N, T, kl_coef);
		if (o->whiten_rewards)
			rl_whiten(rew, len, N, T, 0);
		rl_gae(adv, ret, rew, val, len, N, T, o->gamma, o->lam);
		rl_whiten(adv, len, N, T, 1);
		free(rew);
	} else {
		double *r = xmalloc(sizeof(double) * N), *a = xmalloc(sizeof(double) * N);
		for (int i = 0; i < N; i++)
			r[i] = score[i] - (o->algo == RL_RLOO ? kl_coef * seqkl[i] : 0); /* RLOO: KL in the reward */
		if (o->algo == RL_GRPO)
			rl_grpo_advantages(a, r, N, G, o->scale_rewards);
		else
			rl_rloo_advantages(a, r, N, G, o->normalize_adv);
		for (int i = 0; i < N; i++)
			for (int t = 0; t < T; t++)
				adv[(size_t)i * T + t] = a[i];
		free(r), free(a);
	}

	/* PPO-ptx data: the chosen completions of token records */
	pref_set *ptx = NULL;
	if (o->ptx_data && o->ptx_coef > 0) {
		ptx = pref_load(o->ptx_data, 0, (uint32_t)cfg->vocab_size);
		pref_check_context(ptx, cfg->max_seq_len);
	}

	/* epochs over shuffled mini-batches */
	rl_policy_opts po = {.eps_low = o->eps,
			     .eps_high = o->eps,
			     .beta = o->algo == RL_GRPO ? kl_coef : 0,
			     .seq_level = o->algo == RL_RLOO,
			     .agg = ppo || !o->agg_seq ? RL_AGG_TOKEN : RL_AGG_SEQ};
	int nmb = o->mini_batches < N ? o->mini_batches : N, mbs = (N + nmb - 1) / nmb;
	int *perm = xmalloc(sizeof(int) * N), *ml = xmalloc(sizeof(int) * mbs), *live = xmalloc(sizeof(int) * mbs);
	double *b_lp = xmalloc(sizeof(double) * mbs * T), *b_lo = xmalloc(sizeof(double) * mbs * T);
	double *b_lr = xmalloc(sizeof(double) * mbs * T), *b_a = xmalloc(sizeof(double) * mbs * T);
	double *b_g = xmalloc(sizeof(double) * mbs * T), *b_v = xmalloc(sizeof(double) * mbs * T);
	double *b_vo = xmalloc(sizeof(double) * mbs * T), *b_R = xmalloc(sizeof(double) * mbs * T);
	float *b_gv = xmalloc(sizeof(float) * mbs * T), *tokbuf = xmalloc(sizeof(float) * mbs * T);
	model_seq *sq = xmalloc(sizeof(model_seq) * mbs);
	model_scores *sc = xmalloc(sizeof(model_scores) * mbs);
	model_seq_grad *sg = xmalloc(sizeof(model_seq_grad) * mbs);
	model_seq *psq = xmalloc(sizeof(model_seq) * mbs);
	model_scores *psc = xmalloc(sizeof(model_scores) * mbs);
	model_seq_grad *psg = xmalloc(sizeof(model_seq_grad) * mbs);
	double S[M_N] = {0}, lr = o->lr;
	int steps = 0, ptx_pos = 0;
	const lb_backend *be = model_backend(m);
	for (int ep = 0; ep < epochs; ep++) {
		epoch_perm(perm, N, o->seed, ep);
		for (int s0 = 0; s0 < N; s0 += mbs) {
			int k = s0 + mbs <= N ? mbs : N - s0, nl = 0;
			for (int r = 0; r < k; r++) {
				int i = perm[s0 + r];
				ml[r] = len[i];
				memcpy(b_lo + (size_t)r * T, lp_old + (size_t)i * T, sizeof(double) * T);
				memcpy(b_lr + (size_t)r * T, lp_ref + (size_t)i * T, sizeof(double) * T);
				memcpy(b_a + (size_t)r * T, adv + (size_t)i * T, sizeof(double) * T);
				memset(b_lp + (size_t)r * T, 0, sizeof(double) * T);
				if (len[i] == 0 || r % nr != rank)
					continue; /* nothing sampled: no token to score; another rank's row */
				live[nl] = r;
				sq[nl] = (model_seq){.prompt = ro[i].prompt,
						     .n_prompt = ro[i].np,
						     .comp = {ro[i].comp},
						     .n_comp_tok = {ro[i].n},
						     .n_comp = 1};
				sc[nl] = (model_scores){.tok_logp = {tokbuf + (size_t)r * T}};
				nl++;
			}
			size_t np = model_n_trainable(m);
			be->memset0(pol.G, np * sizeof(float));
			int any = 0;
			for (int r = 0; r < k; r++)
				any |= len[perm[s0 + r]] > 0;
			if (nl)
				model_forward(m, pol.ws, sq, nl, sc, 1);
			else if (any)
				skip_forward(m);
			for (int q = 0; q < nl; q++)
				for (int t = 0; t < ml[live[q]]; t++)
					b_lp[(size_t)live[q] * T + t] = tokbuf[(size_t)live[q] * T + t];
			dist_allreduce_sum_f64(b_lp, (size_t)k * T); /* every rank: the whole mini-batch's */
			rl_policy_stats ps;
			rl_policy_loss(b_g, &ps, b_lp, b_lo, b_lr, b_a, ml, k, T, &po);
			for (int q = 0; q < nl; q++)
				sg[q] = (model_seq_grad){.d_tok_logp = {b_g + (size_t)live[q] * T}};
			if (nl)
				model_backward(m, pol.ws, sg, pol.G);
			double ptx_nll = 0;
			if (ptx) { /* + γ·(token mean NLL) of the next k ptx records */
				int kp = k < ptx->n ? k : ptx->n, ntok = 0, nq = 0;
				for (int q = 0; q < kp; q++) {
					pref_rec *pr = &ptx->r[(ptx_pos + q) % ptx->n];
					ntok += pr->nc;
				}
				for (int q = rank; q < kp; q += nr) { /* own arrays: the value step below reads sq */
					pref_rec *pr = &ptx->r[(ptx_pos + q) % ptx->n];
					psq[nq] = (model_seq){.prompt = pr->prompt,
							      .n_prompt = pr->np,
							      .comp = {pr->chosen},
							      .n_comp_tok = {pr->nc},
							      .n_comp = 1};
					psc[nq] = (model_scores){0};
					psg[nq++] = (model_seq_grad){.d_logp = {-o->ptx_coef / ntok}};
				}
				if (nq) {
					model_forward(m, pol.ws, psq, nq, psc, 1);
					for (int q = 0; q < nq; q++)
						ptx_nll -= psc[q].logp[0] / ntok;
					model_backward(m, pol.ws, psg, pol.G);
				} else if (kp) {
					skip_forward(m);
				}
				dist_allreduce_sum_f64(&ptx_nll, 1);
				ptx_pos = (ptx_pos + kp) % ptx->n;
			}
			lr = sched_lr(o->schedule, o->lr, pol.t, o->warmup, o->total_steps);
			double gn = opt_step(m, pol.G, pol.dm, pol.dv, ++pol.t, lr, o->weight_decay, o->clip);
			if (isnan(gn))
				dist_die_same(EXIT_DATA, "%s: non-finite policy gradient at epoch %d (lower --lr?)",
					      o->in, ep + 1);
			S[M_PG] += ps.loss, S[M_CLIP] += ps.clipfrac, S[M_AKL] += ps.approxkl, S[M_RATIO] += ps.ratio;
			S[M_KL] += ps.kl, S[M_PTX] += ptx_nll, S[M_GN] += gn;
			if (ppo) { /* the value model's step on the clipped value loss */
				int nv = 0;
				for (int r = 0; r < k; r++) {
					int i = perm[s0 + r];
					memcpy(b_vo + (size_t)r * T, val + (size_t)i * T, sizeof(double) * T);
					memcpy(b_R + (size_t)r * T, ret + (size_t)i * T, sizeof(double) * T);
					memset(b_v + (size_t)r * T, 0, sizeof(double) * T);
				}
				for (int q = 0; q < nl; q++)
					sc[q] = (model_scores){.tok_value = tokbuf + (size_t)live[q] * T}, nv++;
				size_t vnp = model_n_params(val_m.m);
				model_backend(val_m.m)->memset0(val_m.G, vnp * sizeof(float));
				if (nv)
					model_forward(val_m.m, val_m.ws, sq, nv, sc, 1);
				for (int q = 0; q < nl; q++)
					for (int t = 0; t < ml[live[q]]; t++)
						b_v[(size_t)live[q] * T + t] = tokbuf[(size_t)live[q] * T + t];
				dist_allreduce_sum_f64(b_v, (size_t)k * T);
				rl_value_stats vs;
				rl_value_loss(b_g, &vs, b_v, b_vo, b_R, ml, k, T, o->eps_v);
				for (int q = 0; q < nl; q++) {
					for (int t = 0; t < ml[live[q]]; t++)
						b_gv[(size_t)live[q] * T + t] =
							(float)(o->vf_coef * b_g[(size_t)live[q] * T + t]);
					sg[q] = (model_seq_grad){.d_tok_value = b_gv + (size_t)live[q] * T};
				}
				if (nv)
					model_backward(val_m.m, val_m.ws, sg, val_m.G);
				double vlr = sched_lr(o->schedule, o->value_lr >= 0 ? o->value_lr : o->lr, val_m.t,
						      o->warmup, o->total_steps);
				if (isnan(opt_step(val_m.m, val_m.G, val_m.dm, val_m.dv, ++val_m.t, vlr,
						   o->weight_decay, o->clip)))
					dist_die_same(EXIT_DATA, "%s: non-finite value gradient at epoch %d", o->in,
						      ep + 1);
				S[M_VF] += vs.loss, S[M_VCLIP] += vs.clipfrac;
			}
			steps++;
		}
	}

	/* metrics, named as TRL logs them */
	double mkl = 0, ment = 0, mnons = 0, msc = 0, neos = 0;
	for (int i = 0; i < N; i++) {
		mkl += seqkl[i] / N;
		msc += score[i] / N;
		neos += has_eos[i];
		for (int t = 0; t < len[i]; t++) {
			ment -= lp_old[(size_t)i * T + t] / N;
			mnons += nons[(size_t)i * T + t] / N;
		}
	}
	double new_coef = o->kl_target > 0 ? rl_kl_adapt(kl_coef, mkl, o->kl_target, o->kl_horizon, N) : kl_coef;
	json_t *mj = json_object();
	json_object_set_new(mj, "loss", json_string(rl_algo_name(o->algo)));
	json_object_set_new(mj, "episodes", json_integer(N));
	json_object_set_new(mj, "objective/kl", json_real(mkl));
	json_object_set_new(mj, "objective/entropy", json_real(ment));
	json_object_set_new(mj, "objective/scores", json_real(msc));
	if (ppo) {
		json_object_set_new(mj, "objective/non_score_reward", json_real(mnons));
		json_object_set_new(mj, "objective/rlhf_reward", json_real(mnons + msc));
	}
	json_object_set_new(mj, "policy/approxkl_avg", json_real(S[M_AKL] / steps));
	json_object_set_new(mj, "policy/clipfrac_avg", json_real(S[M_CLIP] / steps));
	json_object_set_new(mj, "loss/policy_avg", json_real(S[M_PG] / steps));
	if (ppo) {
		json_object_set_new(mj, "loss/value_avg", json_real(S[M_VF] / steps));
		json_object_set_new(mj, "val/vf_loss", json_real(S[M_VF] / steps));
		json_object_set_new(mj, "val/clipfrac_avg", json_real(S[M_VCLIP] / steps));
	}
	if (o->algo == RL_GRPO && kl_coef > 0)
		json_object_set_new(mj, "kl", json_real(S[M_KL] / steps));
	if (ptx)
		json_object_set_new(mj, "ptx/nll", json_real(S[M_PTX] / steps));
	json_object_set_new(mj, "val/ratio", json_real(S[M_RATIO] / steps));
	json_object_set_new(mj, "val/num_eos_tokens", json_integer((json_int_t)neos));
	json_object_set_new(mj, "grad_norm", json_real(S[M_GN] / steps));
	json_object_set_new(mj, "kl_coef", json_real(kl_coef));
	json_object_set_new(mj, "next_kl_coef", json_real(new_coef));
	json_object_set_new(mj, "steps", json_integer(steps));
	json_object_set_new(mj, "global_step", json_integer(pol.t));
	json_object_set_new(mj, "lr", json_real(lr));
	char *txt = json_dumps(mj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
	if (rank > 0) {
		/* rank 0 reports */
	} else if (o->metrics && !strcmp(o->metrics, "-")) {
		fprintf(stderr, "%s\n", txt);
	} else if (o->metrics) {
		FILE *f = fopen(o->metrics, "a");
		if (!f || fprintf(f, "%s\n", txt) < 0 || fclose(f) != 0)
			die("%s: cannot append: %s", o->metrics, strerror(errno));
	}
	if (!o->quiet && rank == 0)
		info("%s", txt);
	free(txt);
	json_decref(mj);

	/* the new policy (or adapter), its optimizer state and the value
	 * model's: a checkpoint, written aside and renamed into place (rank 0,
	 * once every rank holds the same weights) */
	ck->step = pol.t;
	trained_sync_down(&pol);
	if (ppo)
		trained_sync_down(&val_m);
	if (nr > 1) {
		char h[65];
		dp_params_hash(ck, h);
		dp_check_same("the policy after the update", h);
		if (ppo) {
			dp_model_hash(val_m.m, h);
			dp_check_same("the value model after the update", h);
		}
	}
	if (rank == 0) {
		rl_extra x = {.val = &val_m, .next_kl_coef = new_coef};
		ck->save_extra = save_extra;
		ck->save_extra_arg = &x;
		json_t *opts = json_pack("{s:s, s:f, s:f, s:I}", "loss", rl_algo_name(o->algo), "lr", o->lr, "kl_coef",
					 kl_coef, "seed", (json_int_t)o->seed);
		ckpt_save(ck, o->out, opts);
		json_decref(opts);
	}

	for (int i = 0; i < N; i++)
		free(ro[i].prompt), free(ro[i].comp), free(ro[i].lp_old), free(ro[i].lp_ref);
	free(ro), free(len), free(has_eos), free(lp_old), free(lp_ref), free(score), free(adv);
	free(ret), free(val), free(nons), free(seqkl), free(perm), free(ml), free(live), free(b_lp), free(b_lo),
		free(b_lr);
	free(b_a), free(b_g), free(b_v), free(b_vo), free(b_R), free(b_gv), free(tokbuf), free(sq), free(sc), free(sg);
	free(psq), free(psc), free(psg);
	if (ptx)
		pref_free(ptx);
	trained_close(&pol);
	if (val_m.m) {
		trained_close(&val_m);
		model_free(val_m.m);
	}
	free(vhm), free(vhv);
	ckpt_free(ck);
}

void rl_rollout_logprobs(model *m, FILE *in, const char *name, const char *out_path, rl_logprobs_run *o)
{
	const model_config *cfg = model_cfg(m);
	jsonl *r = jsonl_open_fp(in, name);
	json_t **objs = NULL;
	int N;
	rollout *ro = read_rollouts_from(r, cfg->vocab_size, cfg->max_seq_len, &N, &objs);
	jsonl_close(r);
	int *all = xmalloc(sizeof(int) * N);
	double **lp = xmalloc(sizeof(double *) * N);
	o->n_tok = o->n_computed = o->n_cached = o->tok_computed = 0;
	char *dec = NULL;
	size_t dec_cap = 0;
	for (int i = 0, warned = 0; o->tok && i < N; i++)
		sample_text_check(o->tok, objs[i], ro[i].comp, ro[i].n - ro[i].has_eos, name, ro[i].line,
				  o->ignore_prov, &warned, &dec, &dec_cap);
	free(dec);
	for (int i = 0; i < N; i++) {
		all[i] = i;
		lp[i] = xcalloc((size_t)ro[i].n + 1, sizeof(double));
		o->n_tok += (uint64_t)(ro[i].np + ro[i].n);
	}
	/* Forwards of G rollouts in input order (score_rows'), each skipped
	 * when the cache holds all its rollouts: what is cached never changes
	 * how the rest is packed, so a re-run after a kill writes the same bits.
	 * The cache gets each forward's results at once, flushed every 32. */
	const int G = o->one_per_forward ? 1 : 32;
	float *tmp = NULL;
	size_t tcap = 0;
	model_ws *ws = model_ws_new(m);
	for (int a = 0, since = 0; a < N; a += G) {
		const int k = N - a < G ? N - a : G;
		int hits = 0;
		for (int j = a; j < a + k; j++) {
			int32_t n;
			const float *c = NULL;
			if (o->cache && ro[j].n) {
				refcache_key(ro[j].prompt, (size_t)ro[j].np, ro[j].comp, (size_t)ro[j].n, NULL, 0,
					     ro[j].key);
				c = refcache_get_tokens(o->cache, ro[j].key, &n);
			}
			if (!ro[j].n || (c && n == ro[j].n)) {
				for (int t = 0; t < ro[j].n; t++)
					lp[j][t] = c[t];
				hits++;
			}
		}
		if (hits == k) {
			o->n_cached += (uint64_t)k;
			continue;
		}
		score_rows(m, ws, ro, all + a, k, lp + a, 0);
		for (int j = a; j < a + k; j++) {
			o->n_computed++;
			o->tok_computed += (uint64_t)(ro[j].np + ro[j].n);
			if (!o->cache || !ro[j].n)
				continue;
			xgrow((void **)&tmp, &tcap, (size_t)ro[j].n, sizeof *tmp);
			for (int t = 0; t < ro[j].n; t++)
				tmp[t] = (float)lp[j][t]; /* exact: score_rows' values are floats */
			refcache_put_tokens(o->cache, ro[j].key, tmp, ro[j].n);
		}
		if ((since += k) >= 32) {
			refcache_flush(o->cache);
			since = 0;
		}
	}
	refcache_flush(o->cache);
	free(tmp);
	model_ws_free(ws);
	outfile *out = out_open(out_path);
	for (int i = 0; i < N; i++) {
		json_t *a = json_array();
		for (int t = 0; t < ro[i].n; t++)
			json_array_append_new(a, json_real(lp[i][t]));
		json_object_set_new(objs[i], o->key, a);
		if (json_dumpf(objs[i], out->fp, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17)) != 0 ||
		    fputc('\n', out->fp) == EOF)
			die("%s: write failed", out->path ? out->path : "standard output");
		json_decref(objs[i]);
		free(lp[i]);
		free(ro[i].prompt), free(ro[i].comp), free(ro[i].lp_old), free(ro[i].lp_ref);
	}
	out_close(out);
	o->n_lines = (uint64_t)N;
	free(objs), free(all), free(lp), free(ro);
}
