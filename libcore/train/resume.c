/* resume.c — what resuming a run does with its options (resume.h). */
#define _GNU_SOURCE
#include "libcore/train/resume.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "libcore/dist/dist.h"

/* A value of train_opts_to_json, as a flag's argument. */
static void opt_value(const json_t *v, char *out, size_t n)
{
	if (json_is_string(v))
		snprintf(out, n, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(out, n, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(out, n, "%.9g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(out, n, "%s", json_is_true(v) ? "on" : "off");
	else
		snprintf(out, n, "(none)");
}

/* What resuming does with each option recorded in the checkpoint (by its
 * train_opts_to_json key). Not given on the command line: the run's value.
 * Given and different: R_RUN (what the steps compute: the loss, its
 * parameters, the batch, the optimizer, the data order) is refused unless
 * --allow-changed-options; R_BETA (the checkpoint's β model) is always
 * refused, --fresh makes a new one; R_LOG is taken and logged. */
enum { R_RUN, R_BETA, R_LOG };
static const struct {
	const char *key; /* its option's long name: '_' as '-' */
	int kind;
} resume_keys[] = {
	{"loss", R_RUN},
	{"beta", R_RUN},
	{"batch_size", R_RUN},
	{"grad_accum", R_RUN},
	{"lr", R_RUN},
	{"beta_lr", R_RUN},
	{"weight_decay", R_RUN},
	{"beta_wd", R_RUN},
	{"warmup", R_RUN},
	{"schedule", R_RUN},
	{"clip", R_RUN},
	{"seed", R_RUN},
	{"beta_grad", R_RUN},
	{"freeze_policy", R_RUN},
	{"label_smoothing", R_RUN},
	{"gamma", R_RUN},
	{"sft_weight", R_RUN},
	{"bdpo_alpha", R_RUN},
	{"bdpo_rho", R_RUN},
	{"range_reg", R_RUN},
	{"beta_min", R_RUN},
	{"beta_max", R_RUN},
	{"group_reg", R_RUN},
	{"entropy_reg", R_RUN},
	{"entropy_alpha", R_RUN},
	{"epsilon", R_BETA},
	{"pool", R_BETA},
	{"ppl_from", R_BETA},
	{"total_steps", R_LOG},
	{"loss_weights", R_RUN},
	{"learned_beta", R_RUN},
	{"discopop_tau", R_RUN},
	{"drdpo_beta_prime", R_RUN},
	{"center_rewards_coef", R_RUN},
};

/* "batch_size" -> "batch-size" */
static void flag_of(const char *key, char *buf, size_t n)
{
	snprintf(buf, n, "%s", key);
	for (char *p = buf; *p; p++)
		if (*p == '_')
			*p = '-';
}

void resume_options(train_opts *to, const ckpt *ck, const json_t *pj, const cli *c, int allow)
{
	train_opts prev;
	const char *bad;
	train_opts_default(&prev);
	if (!pj || train_opts_from_json(&prev, pj, &bad) != 0) {
		warning("%s: trainer_state.json has no readable options (%s): this run's options are not checked "
			"against the run's",
			to->init, pj ? bad : "none");
		return;
	}
	json_t *jp = train_opts_to_json(&prev), *jc = train_opts_to_json(to);
	char refused[1024] = "", a[64], b[64];
	for (size_t i = 0; i < sizeof resume_keys / sizeof *resume_keys; i++) {
		const char *k = resume_keys[i].key;
		char f[64];
		flag_of(k, f, sizeof f);
		json_t *vp = json_object_get(jp, k), *vc = json_object_get(jc, k);
		if (json_equal(vp, vc))
			continue;
		if (!cli_given(c, f)) {
			if (resume_keys[i].kind != R_LOG) /* total steps: the schedule rule in main */
				json_object_set(jc, k, vp);
			continue;
		}
		opt_value(vp, a, sizeof a);
		opt_value(vc, b, sizeof b);
		if (resume_keys[i].kind == R_BETA)
			dist_die_same(EXIT_DATA,
				      "%s: --%s %s: the checkpoint's beta model has %s, fixed on resume (--fresh makes "
				      "a new beta model)",
				      to->init, f, b, a);
		if (resume_keys[i].kind == R_LOG)
			info("resuming with --%s %s (the run's: %s)", f, b, a);
		else if (allow && dist_rank() == 0)
			warning("resuming with --%s %s instead of the run's %s (--allow-changed-options)", f, b, a);
		else if (!allow)
			snprintf(refused + strlen(refused), sizeof refused - strlen(refused),
				 "%s--%s %s (the run's: %s)", refused[0] ? ", " : "", f, b, a);
	}
	if (refused[0])
		dist_die_same(EXIT_DATA,
			      "%s: resuming with options that change what the run trains: %s; give "
			      "--allow-changed-options to change them anyway, or --fresh to start a new run",
			      to->init, refused);
	if (cli_given(c, "head") && to->ck.head != ck->bh->kind)
		dist_die_same(EXIT_DATA,
			      "%s: --head %s: the checkpoint's beta model is %s, fixed on resume (--fresh makes a new "
			      "beta model)",
			      to->init, head_kind_name(to->ck.head), head_kind_name(ck->bh->kind));
	if (cli_given(c, "head-hidden") && ck->bh->kind == HEAD_MLP && to->ck.head_hidden != ck->bh->K)
		dist_die_same(
			EXIT_DATA,
			"%s: --head-hidden %d: the checkpoint's beta model has %d, fixed on resume (--fresh makes "
			"a new beta model)",
			to->init, to->ck.head_hidden, ck->bh->K);
	json_object_del(jc, "init"); /* to->init stays the path given */
	if (train_opts_from_json(to, jc, &bad) != 0)
		BUG("options %s", bad);
	json_decref(jp);
	json_decref(jc);
}

void resume_log(const json_t *pj, const json_t *state, const char *metrics, long save_every, int threads)
{
	const char *pm = json_string_value(json_object_get(pj, "metrics"));
	const json_t *ps = json_object_get(pj, "save_every"), *pt = json_object_get(pj, "threads");
	const char *pd = json_string_value(json_object_get(state, "device"));
	if (pm && strcmp(pm, metrics ? metrics : ""))
		info("resuming with --metrics %s (the run's: %s)", metrics ? metrics : "(none)", pm[0] ? pm : "(none)");
	if (json_is_integer(ps) && json_integer_value(ps) != save_every)
		info("resuming with --save-every %ld (the run's: %lld)", save_every, (long long)json_integer_value(ps));
	if (json_is_integer(pt) && json_integer_value(pt) != threads)
		info("resuming with --threads %d (the run's: %lld; 0 = the default)", threads,
		     (long long)json_integer_value(pt));
	if (pd && lbdpo_run_device && strcmp(pd, lbdpo_run_device))
		info("resuming on %s (the run's: %s)", lbdpo_run_device, pd);
}

void resume_total_steps(train_opts *to, const ckpt *ck, long steps)
{
	const json_t *pj = ck->state ? json_object_get(ck->state, "options") : NULL;
	if (to->total_steps < 0 && ck->state) {
		/* resuming: keep the schedule length the run started with */
		train_opts prev;
		const char *bad;
		train_opts_default(&prev);
		if (train_opts_from_json(&prev, pj, &bad) == 0 && prev.total_steps >= ck->step + steps)
			to->total_steps = prev.total_steps;
	}
	if (to->total_steps < 0) {
		to->total_steps = ck->step + steps;
		const json_t *pt = ck->resumed ? json_object_get(pj, "total_steps") : NULL;
		if (json_is_integer(pt) && json_integer_value(pt) != to->total_steps)
			info("resuming: the schedule is now %ld steps long (the run's: %lld), to fit --steps",
			     to->total_steps, (long long)json_integer_value(pt));
	}
}

/* Is v better than the best so far (none: yes)? */
int best_better(const ckpt *ck, const char *mode, double v)
{
	const json_t *b = ck->best ? json_object_get(ck->best, "value") : NULL;
	if (!json_is_number(b))
		return 1;
	const double o = json_number_value(b);
	return !strcmp(mode, "min") ? v < o : v > o;
}

/* The best so far of a resumed run: what the checkpoint's trainer state
 * says, or what best_dir's says when better (the run was killed after
 * writing best_dir and before its next save of --output). Another metric or
 * mode than the run's starts a new best. */
void best_resume(ckpt *ck, const char *best_dir, const char *metric, const char *mode)
{
	json_t *cand[2] = {ck->state ? json_incref(json_object_get(ck->state, "best")) : NULL, NULL};
	char *p = path_join(best_dir, "trainer_state.json");
	json_t *bs = ckpt_is(best_dir) ? json_load_file(p, 0, NULL) : NULL;
	free(p);
	if (bs)
		cand[1] = json_incref(json_object_get(bs, "best"));
	json_decref(bs);
	for (int i = 0; i < 2; i++) {
		const json_t *c = cand[i];
		const char *m = json_string_value(json_object_get(c, "metric")),
			   *md = json_string_value(json_object_get(c, "mode"));
		if (!c || !m || !md || !json_is_number(json_object_get(c, "value")))
			continue;
		if (strcmp(m, metric) || strcmp(md, mode)) {
			if (i == 0)
				info("--save-best %s (%s): the run kept the best %s (%s); starting a new best", metric,
				     mode, m, md);
			continue;
		}
		if (best_better(ck, mode, json_number_value(json_object_get(c, "value")))) {
			json_decref(ck->best);
			ck->best = json_deep_copy(c);
		}
	}
	json_decref(cand[0]);
	json_decref(cand[1]);
	if (ck->best)
		info("resuming: the best %s so far is %.6g at step %lld (%s)", metric,
		     json_number_value(json_object_get(ck->best, "value")),
		     (long long)json_integer_value(json_object_get(ck->best, "step")), best_dir);
}
