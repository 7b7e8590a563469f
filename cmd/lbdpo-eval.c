/* lbdpo-eval — held-out metrics of a checkpoint on cached preference records:
 * loss, preference accuracy, reward margins, log-probs and their change vs
 * the reference, a KL proxy, β statistics and correlations; overall and per
 * group; optional gnuplot plots and generation statistics. man lbdpo-eval(1). */
#define _GNU_SOURCE
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/jsonl.h"
#include "libcore/objective/betahead.h"
#include "libcore/objective/loss.h"
#include "libcore/objective/loss_cli.h"
#include "libcore/nn/model.h"
#include "libcore/train/engine.h"
#include "libcore/train/adapter.h"
#include "libcore/train/eval.h"
#include "libcore/train/rlstep.h"
#include "libcore/nn/backend_opts.h"
#include "libcore/nn/cpu/runtime.h"
#include "base/cli.h"
#include "base/util.h"


/* simpo's rewards (pair_rewards) */
static int g_simpo_rewards;
static void rewards(const pair_res *q, double *c, double *j) { pair_rewards(q, g_simpo_rewards, c, j); }

static double corr(const double *x, const double *y, int n)
{
	double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
	for (int i = 0; i < n; i++) {
		mx += x[i] / n;
		my += y[i] / n;
	}
	for (int i = 0; i < n; i++) {
		sxx += (x[i] - mx) * (x[i] - mx);
		syy += (y[i] - my) * (y[i] - my);
		sxy += (x[i] - mx) * (y[i] - my);
	}
	return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0.0;
}

/* Summary of the pairs whose group is g (g = -2: all). */
static json_t *summarize(const pair_res *r, int n, int g)
{
	res_summary m;
	pair_summary(&m, r, n, g, g_simpo_rewards);
	const int k = m.n;
	double *b = xmalloc(sizeof(double) * (size_t)(n + 1)), *p = xmalloc(sizeof(double) * (size_t)(n + 1)),
	       *s = xmalloc(sizeof(double) * (size_t)(n + 1));
	for (int i = 0, j = 0; i < n; i++) {
		if (g != -2 && r[i].group != g)
			continue;
		b[j] = r[i].beta;
		p[j] = r[i].ppl;
		s[j] = r[i].delta > 0 ? 1 : r[i].delta < 0 ? -1 : 0;
		j++;
	}
	json_t *o = json_object();
	json_object_set_new(o, "n", json_integer(k));
	if (k > 0) {
		json_object_set_new(o, "loss", json_real(m.loss));
		json_object_set_new(o, "rewards/accuracies", json_real(m.acc));
		json_object_set_new(o, "rewards/chosen", json_real(m.rc));
		json_object_set_new(o, "rewards/rejected", json_real(m.rr));
		json_object_set_new(o, "rewards/margins", json_real(m.margin));
		json_object_set_new(o, "logps/chosen", json_real(m.lc));
		json_object_set_new(o, "logps/rejected", json_real(m.lr));
		json_object_set_new(o, "logps/chosen_change", json_real(m.dc));
		json_object_set_new(o, "logps/rejected_change", json_real(m.dr));
		json_object_set_new(o, "kl/chosen", json_real(m.dc));
		json_object_set_new(o, "beta/mean", json_real(m.bmean));
		json_object_set_new(o, "beta/std", json_real(m.bstd));
		json_object_set_new(o, "beta/min", json_real(m.bmin));
		json_object_set_new(o, "beta/max", json_real(m.bmax));
		json_object_set_new(o, "ppl/prompt", json_real(m.ppl));
		json_object_set_new(o, "corr/beta_ppl", json_real(corr(b, p, k)));
		json_object_set_new(o, "corr/beta_sign_delta", json_real(corr(b, s, k)));
	}
	free(b);
	free(p);
	free(s);
	return o;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Generation statistics: mean length (characters, whitespace words) and
 * distinct-n = |unique n-grams| / |n-grams| over all generations (n = 1, 2). */
static json_t *gen_stats(const char *path)
{
	jsonl *f = jsonl_open(path);
	const char *line;
	size_t len;
	int rc;
	long n = 0;
	double chars = 0, words = 0;
	size_t ng[2] = {0, 0}, cp[2] = {0, 0};
	char **grams[2] = {NULL, NULL};
	char err[512];
	while ((rc = jsonl_next(f, &line, &len)) == 1) {
		unsigned long long lineno = jsonl_lineno(f);
		json_t *j = jsonl_parse(line, len, err, sizeof err);
		if (!j)
			die("%s: line %llu: %s", jsonl_name(f), lineno, err);
		json_t *t = json_object_get(j, "completion");
		if (!t)
			t = json_object_get(j, "text");
		if (!json_is_string(t))
			die("%s: line %llu: no \"completion\" or \"text\" string", jsonl_name(f), lineno);
		const char *s = json_string_value(t);
		chars += (double)strlen(s);
		n++;
		char *dup = xstrdup(s), *save = NULL;
		char **w = NULL;
		size_t nw = 0, wc = 0;
		for (char *tok = strtok_r(dup, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
			xgrow((void **)&w, &wc, nw + 1, sizeof(char *));
			w[nw++] = tok;
		}
		words += (double)nw;
		for (int k = 0; k < 2; k++)
			for (size_t i = 0; i + (size_t)k < nw; i++) {
				char *gs;
				int rc = k == 0 ? asprintf(&gs, "%s", w[i]) : asprintf(&gs, "%s %s", w[i], w[i + 1]);
				if (rc < 0)
					die("out of memory");
				xgrow((void **)&grams[k], &cp[k], ng[k] + 1, sizeof(char *));
				grams[k][ng[k]++] = gs;
			}
		free(w);
		free(dup);
		json_decref(j);
	}
	if (rc < 0)
		die("%s: %s", jsonl_name(f), jsonl_error(f));
	jsonl_close(f);
	json_t *o = json_object();
	json_object_set_new(o, "n", json_integer(n));
	json_object_set_new(o, "mean_chars", json_real(n ? chars / n : 0));
	json_object_set_new(o, "mean_words", json_real(n ? words / n : 0));
	for (int k = 0; k < 2; k++) {
		size_t uniq = 0;
		if (ng[k])
			qsort(grams[k], ng[k], sizeof(char *), cmp_str);
		for (size_t i = 0; i < ng[k]; i++)
			uniq += i == 0 || strcmp(grams[k][i], grams[k][i - 1]) != 0;
		for (size_t i = 0; i < ng[k]; i++)
			free(grams[k][i]);
		free(grams[k]);
		json_object_set_new(o, k == 0 ? "distinct-1" : "distinct-2",
				    json_real(ng[k] ? (double)uniq / (double)ng[k] : 0));
	}
	return o;
}

/* Text from the data (group names) in gnuplot input, as a copy: q = '\''
 * for the inside of a single-quoted string in the script, where gnuplot
 * expands nothing (no backquotes, no @macros) and '' is a quote; q = '"' for
 * a double-quoted column of a data file, which has no escape, so " becomes
 * '. Control bytes (a newline would end the command) become '?'. */
static char *gp_text(const char *s, char q)
{
	size_t n = strlen(s);
	char *o = xmalloc(2 * n + 1), *w = o;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f)
			*w++ = '?';
		else if (c == '\'' && q == '\'') {
			*w++ = '\'';
			*w++ = '\'';
		} else if (c == '"' && q == '"')
			*w++ = '\'';
		else
			*w++ = (char)c;
	}
	*w = 0;
	return o;
}

/* The files --plot writes into its directory, and the marker that says
 * lbdpo-eval made the directory's plots. */
#define PLOT_MARKER ".lbdpo-plots"
static const char *const plot_files[] = {"beta.dat",     "beta_groups.dat", "curves.dat", "plots.gp", "beta_hist.png",
					 "beta_ppl.png", "beta_groups.png", "curves.png", NULL};

/* Before any work: dir is absent, or a directory whose files of
 * lbdpo-eval's names are removed when it holds the marker (an earlier
 * --plot) and must be absent when it does not (a user's directory: its
 * other files are never touched). */
static void plot_dir_check(const char *dir)
{
	struct stat sb;
	if (stat(dir, &sb) != 0) {
		if (errno == ENOENT)
			return;
		die("%s: %s", dir, strerror(errno));
	}
	if (!S_ISDIR(sb.st_mode))
		die("%s: exists and is not a directory (--plot)", dir);
	char *m = path_join(dir, PLOT_MARKER);
	int ours = lstat(m, &sb) == 0 && S_ISREG(sb.st_mode);
	free(m);
	for (int i = 0; plot_files[i]; i++) {
		char *f = path_join(dir, plot_files[i]);
		if (lstat(f, &sb) == 0) {
			if (!ours)
				die("%s: exists and %s is not a plot directory lbdpo-eval wrote (no %s file); refusing to "
				    "overwrite it (--plot into a new directory)",
				    f, dir, PLOT_MARKER);
			if (unlink(f) != 0)
				die("%s: cannot remove the earlier plot file: %s", f, strerror(errno));
		}
		free(f);
	}
}

/* Data files and a gnuplot script in dir (plot_dir_check passed); PNGs
 * when gnuplot is installed. */
static void plots(const char *dir, const char *metrics, const pair_res *r, int n, const pref_set *data)
{
	if (mkdir(dir, 0777) != 0 && errno != EEXIST)
		die("cannot create %s: %s", dir, strerror(errno));
	char *p = path_join(dir, PLOT_MARKER);
	outfile *o = out_open(p);
	fputs("lbdpo-eval --plot wrote the plots here; a later --plot replaces its own files, never others\n", o->fp);
	out_close(o);
	free(p);
	if (asprintf(&p, "%s/beta.dat", dir) < 0)
		die("out of memory");
	o = out_open(p);
	fprintf(o->fp, "# beta ppl delta group\n");
	for (int i = 0; i < n; i++)
		fprintf(o->fp, "%.9g %.9g %.9g %d\n", r[i].beta, r[i].ppl, r[i].delta, r[i].group);
	out_close(o);
	free(p);
	if (asprintf(&p, "%s/beta_groups.dat", dir) < 0)
		die("out of memory");
	o = out_open(p);
	fprintf(o->fp, "# index group mean_beta n\n");
	for (int g = 0; g < data->n_groups; g++) {
		double s = 0;
		int k = 0;
		for (int i = 0; i < n; i++)
			if (r[i].group == g) {
				s += r[i].beta;
				k++;
			}
		char *t = gp_text(data->groups[g], '"');
		fprintf(o->fp, "%d \"%s\" %.9g %d\n", g, t, k ? s / k : 0, k);
		free(t);
	}
	out_close(o);
	free(p);
	if (metrics) {
		/* the curves of lbdpo-step --metrics, each with its exponential moving
		 * average e ← a·e + (1−a)·x (a = 1 − 20/steps in [0.5, 0.99], about
		 * 20 steps of memory) for the smoothed line drawn over the raw one */
		static const char *keys[] = {"loss",           "rewards/accuracies", "rewards/margins",
					     "rewards/chosen", "rewards/rejected",   "beta/mean",
					     "beta/min",       "beta/max",           "ppl/prompt"};
		enum { NK = sizeof keys / sizeof *keys };
		jsonl *f = jsonl_open(metrics);
		double *v = NULL;
		size_t cap = 0, nrow = 0;
		const char *line;
		size_t len;
		int rc, zigzag = 0;
		char err[512];
		while ((rc = jsonl_next(f, &line, &len)) == 1) {
			json_t *j = jsonl_parse(line, len, err, sizeof err);
			if (!j)
				die("%s: line %llu: %s", jsonl_name(f), (unsigned long long)jsonl_lineno(f), err);
			if (json_object_get(j, "eval/loss")) { /* --eval-input's lines: not training curves */
				json_decref(j);
				continue;
			}
			xgrow((void **)&v, &cap, (nrow + 1) * (NK + 1), sizeof *v);
			double *r = v + nrow * (NK + 1);
			r[0] = (double)json_integer_value(json_object_get(j, "step"));
			if (nrow > 0 && r[0] <= r[-(NK + 1)] && !zigzag) {
				/* lbdpo-step keeps one run's lines in order; this file is not that */
				warning("%s: line %llu: step %.0f after step %.0f: lines of more than one run? the curves "
					"will go back and forth",
					jsonl_name(f), (unsigned long long)jsonl_lineno(f), r[0], r[-(NK + 1)]);
				zigzag = 1;
			}
			for (int k = 0; k < NK; k++) {
				json_t *x = json_object_get(j, keys[k]);
				r[k + 1] = json_is_number(x) ? json_number_value(x) : NAN;
			}
			nrow++;
			json_decref(j);
		}
		if (rc < 0)
			die("%s: %s", jsonl_name(f), jsonl_error(f));
		jsonl_close(f);
		if (asprintf(&p, "%s/curves.dat", dir) < 0)
			die("out of memory");
		o = out_open(p);
		fprintf(o->fp, "# step");
		for (int k = 0; k < NK; k++)
			fprintf(o->fp, " %s", keys[k]);
		for (int k = 0; k < NK; k++)
			fprintf(o->fp, " ema:%s", keys[k]);
		fprintf(o->fp, "\n");
		double a = nrow ? 1 - 20.0 / (double)nrow : 0.5, e[NK];
		a = fmin(0.99, fmax(0.5, a));
		for (size_t i = 0; i < nrow; i++) {
			const double *r = v + i * (NK + 1);
			fprintf(o->fp, "%.0f", r[0]);
			for (int k = 0; k < NK; k++)
				fprintf(o->fp, " %.9g", r[k + 1]);
			for (int k = 0; k < NK; k++) {
				e[k] = i == 0 || isnan(e[k]) ? r[k + 1]
				       : isnan(r[k + 1])     ? e[k]
							     : a * e[k] + (1 - a) * r[k + 1];
				fprintf(o->fp, " %.9g", e[k]);
			}
			fprintf(o->fp, "\n");
		}
		out_close(o);
		free(p);
		free(v);
	}
	if (asprintf(&p, "%s/plots.gp", dir) < 0)
		die("out of memory");
	o = out_open(p);
	/* beta.dat columns: 1 beta, 2 ppl, 3 delta, 4 group index */
	fprintf(o->fp,
		"# lbdpo-eval --plot; run in this directory: gnuplot plots.gp\n"
		"set terminal pngcairo size 1000,560 font 'DejaVu Sans,11' noenhanced\n"
		"set grid lc rgb '#dddddd'\nset key top right box opaque Left reverse\n"
		"set style fill transparent solid 0.5 noborder\n"
		"stats 'beta.dat' using 1 nooutput\nbw = (STATS_max - STATS_min) / 40.0\nif (bw <= 0) bw = 1e-3\n"
		"bin(x) = bw*floor(x/bw) + bw/2\nset boxwidth bw\n"
		"set output 'beta_hist.png'\nset title 'beta(x) on the evaluated prompts'\n"
		"set xlabel 'beta(x)'\nset ylabel 'prompts'\n");
	if (data->n_groups > 0) {
		fprintf(o->fp, "plot ");
		for (int g = 0; g < data->n_groups; g++) {
			char *t = gp_text(data->groups[g], '\'');
			fprintf(o->fp,
				"%s'beta.dat' using (bin($1)):($4 == %d ? 1.0 : 0.0) smooth freq with boxes title 'group %s'",
				g ? ", " : "", g, t);
			free(t);
		}
		fprintf(o->fp, "\n");
	} else {
		fprintf(o->fp, "plot 'beta.dat' using (bin($1)):(1.0) smooth freq with boxes title 'all prompts'\n");
	}
	fprintf(o->fp, "set output 'beta_ppl.png'\nset title 'beta(x) vs prompt PPL(x)'\nset xlabel 'PPL(x)'\n"
		       "set ylabel 'beta(x)'\n");
	if (data->n_groups > 0) {
		fprintf(o->fp, "plot ");
		for (int g = 0; g < data->n_groups; g++) {
			char *t = gp_text(data->groups[g], '\'');
			fprintf(o->fp,
				"%s'beta.dat' using 2:($4 == %d ? $1 : NaN) with points pt 7 ps 0.5 title 'group %s'",
				g ? ", " : "", g, t);
			free(t);
		}
		fprintf(o->fp, "\n");
	} else {
		fprintf(o->fp, "plot 'beta.dat' using 2:1 with points pt 7 ps 0.5 title 'prompts'\n");
	}
	/* ungrouped data (e.g. HH-RLHF) has no per-group plot: gnuplot fails on an empty file */
	if (data->n_groups > 0)
		fprintf(o->fp,
			"set output 'beta_groups.png'\nset title 'mean beta(x) per group'\n"
			"set xlabel 'group'\nset ylabel 'mean beta(x)'\n"
			"set style fill solid 0.6\nset boxwidth 0.5\nset yrange [0:*]\nset xrange [-0.5:%d.5]\n"
			"plot 'beta_groups.dat' using 1:3:xtic(2) with boxes title 'mean beta'\n"
			"set autoscale\nset xtics autofreq\n",
			data->n_groups - 1);
	if (metrics)
		/* curves.dat: 1 step, 2..10 the raw keys, 11..19 their EMAs */
		fprintf(o->fp,
			"set output 'curves.png'\nset terminal pngcairo size 1500,860 font 'DejaVu Sans,10' noenhanced\n"
			"set multiplot layout 2,3 title 'Training (lbdpo-step --metrics): EMA (bold) over the raw value (faint)'\n"
			"set xlabel 'optimizer step'\nset style data lines\nset key top right\n"
			"set title 'loss'\nset ylabel 'loss'\n"
			"plot 'curves.dat' using 1:2 lc rgb '#B01f77b4' notitle, '' using 1:11 lw 2 lc rgb '#1f77b4' title 'loss'\n"
			"set title 'reward accuracy (batch)'\nset ylabel 'accuracy'\nset key bottom right\n"
			"plot 'curves.dat' using 1:3 lc rgb '#B01f77b4' notitle, '' using 1:12 lw 2 lc rgb '#1f77b4' title 'accuracy'\n"
			"set title 'reward margin (batch)'\nset ylabel 'beta * Delta'\nset key top left\n"
			"plot 'curves.dat' using 1:4 lc rgb '#B01f77b4' notitle, '' using 1:13 lw 2 lc rgb '#1f77b4' title 'margin'\n"
			"set title 'rewards'\nset ylabel 'beta * (log pi - log pi_ref)'\nset key bottom left\n"
			"plot 'curves.dat' using 1:5 lc rgb '#B02ca02c' notitle, '' using 1:14 lw 2 lc rgb '#2ca02c' title 'chosen', "
			"'' using 1:6 lc rgb '#B0d62728' notitle, '' using 1:15 lw 2 lc rgb '#d62728' title 'rejected'\n"
			"set title 'beta in the batch'\nset ylabel 'beta'\nset key top left\n"
			"plot 'curves.dat' using 1:16 lw 2 lc rgb '#1f77b4' title 'mean', '' using 1:17 lw 1 dt 3 lc rgb '#555555' title 'min', "
			"'' using 1:18 lw 1 dt 2 lc rgb '#555555' title 'max'\n"
			"set title 'policy prompt PPL (batch mean)'\nset ylabel 'PPL(x)'\n"
			"plot 'curves.dat' using 1:10 lc rgb '#B09467bd' notitle, '' using 1:19 lw 2 lc rgb '#9467bd' title 'prompt PPL'\n"
			"unset multiplot\n");
	out_close(o);
	free(p);
	/* gnuplot runs in dir on the script's name: no shell sees dir */
	char *gp[] = {"gnuplot", "plots.gp", NULL};
	int st = run_program(dir, gp);
	if (st < 0 && errno == ENOENT)
		warning("gnuplot not found: wrote the data and %s/plots.gp only (install it: apt-get install gnuplot-nox)",
			dir);
	else if (st < 0)
		warning("cannot run gnuplot in %s: %s", dir, strerror(errno));
	else if (st != 0)
		warning("gnuplot failed on %s/plots.gp (exit %d)", dir, st);
}

int main(int argc, char **argv)
{
	const char *in = NULL, *outp = NULL, *ckp = NULL, *adapter = NULL, *metrics = NULL, *plotdir = NULL,
		   *gens = NULL;
	const char *perrec = NULL;
	char errbuf[256], names[512];
	long bs = 8;
	int ignore_prov = 0;
	backend_opts bo = {0};
	loss_opts lo;
	loss_opts_default(&lo);
	loss_cli lc = {.lo = &lo};
	const cli_opt opts[] = {
		OPT_STRING_REQUIRED('m', "model", "PATH", &ckp, "checkpoint directory or model (required)"),
		OPT_STRING('i', "input", "FILE", &in, "records with reference scores (default stdin)"),
		OPT_STRING('o', "output", "FILE", &outp, "JSON summary (default stdout)"),
		CLI_SECTION("Loss (default: the checkpoint's options, else those below):"),
		LOSS_CLI_OPTS(&lc,
			      "loss or comma list of losses to report, sigmoid = dpo (default: the checkpoint's, else "
			      "lbdpo)"),
		CLI_SECTION("Other:"),
		OPT_INT(0, "batch-size", "B", &bs, 1, 1 << 20, "pairs per forward"),
		OPT_STRING(0, "metrics", "FILE", &metrics,
			   "training metrics (lbdpo-step --metrics) for the curves of --plot"),
		OPT_STRING(
			0, "plot", "DIR", &plotdir,
			"write plots (PNG via gnuplot when installed) and their data into DIR (never over a user's file)"),
		OPT_STRING(0, "generations", "FILE", &gens,
			   "JSONL with \"completion\" or \"text\" strings: lengths and distinct-n"),
		OPT_STRING(0, "per-record", "FILE", &perrec,
			   "also write one JSON line per record (id, group, beta, ppl, delta, logps, loss)"),
		BACKEND_CLI_OPTS(&bo),
		ADAPTER_CLI_OPT(&adapter),
		OPT_BOOL(0, "ignore-provenance", &ignore_prov,
			 "accept records of another tokenizer or reference than the model's (warns; default: refuse)"),
		OPT_BOOL('q', "quiet", &lbdpo_quiet, "no progress lines and no summary"),
		CLI_ALIAS('c', "checkpoint", "model"),
		{0}};
	const cli_spec spec = {"lbdpo-eval", "lbdpo-eval -m CHECKPOINT [options] < heldout.ref > summary.json",
			       "Evaluate a checkpoint (or a plain model) on held-out cached records.", opts,
			       print_version};
	cli c;
	program_start(&c, &spec, argc, argv);
	cli_parse(&c, 0);
	backend_opts_apply(&bo);
	if (plotdir)
		plot_dir_check(plotdir); /* before any work: refuses to overwrite a user's files */
	ckpt *ck = ckpt_load(
		ckp,
		&(ckpt_opts){.head = HEAD_LINEAR, .eps = 0.1, .w0 = 1.0, .seed = 1, .adapter = adapter, .frozen = 1});
	model_need_lm(ck->m, ckp);
	/* the training run's loss settings (engine.h: train_opts) where no flag
	 * gives them */
	train_opts run;
	const char *bad = NULL;
	train_opts_default(&run);
	/* (an RL step's checkpoint has no preference loss: the defaults) */
	const json_t *oj = ck->state && rl_state_algo(ck->state) < 0 ? json_object_get(ck->state, "options") : NULL;
	if (oj && train_opts_from_json(&run, oj, &bad) == 0) {
		if (!cli_given(&c, "loss")) { /* the run's loss, its list and learned beta */
			lo.kind = run.loss.kind;
			lo.n_terms = run.loss.n_terms;
			memcpy(lo.terms, run.loss.terms, sizeof lo.terms);
			memcpy(lo.term_w, run.loss.term_w, sizeof lo.term_w);
			lo.learned_beta = run.loss.learned_beta;
		}
		if (!cli_given(&c, "discopop-tau"))
			lo.discopop_tau = run.loss.discopop_tau;
		if (!cli_given(&c, "drdpo-beta-prime"))
			lo.drdpo_beta_prime = run.loss.drdpo_beta_prime;
		if (!cli_given(&c, "beta") && run.loss.beta > 0)
			lo.beta = run.loss.beta;
		if (!cli_given(&c, "label-smoothing"))
			lo.label_smoothing = run.loss.label_smoothing;
		if (!cli_given(&c, "gamma"))
			lo.gamma = run.loss.gamma;
		lo.sft_weight = run.loss.sft_weight;
	} else if (oj) {
		warning("%s: trainer_state.json: options unreadable (%s); using defaults", ckp, bad);
	}
	if (lo.kind == LOSS_REWARD)
		die_usage("--loss reward: a reward model is scored by lbdpo-reward, not evaluated as a policy");
	if (loss_cli_finish(&lc, errbuf, sizeof errbuf) < 0)
		die_usage("%s", errbuf);
	g_simpo_rewards = lo.kind == LOSS_SIMPO && lo.n_terms == 0;
	if (lo.kind == LOSS_BETADPO)
		lo.kind = LOSS_DPO; /* held-out: β0 without the batch calibration */
	if (loss_learned_beta(&lo) && !ck->resumed)
		warning("%s has no trained beta model: beta = w*PPL with w = 1", ckp);
	const model_config *cfg = model_cfg(ck->m);
	pref_set *data = pref_load(in, loss_opts_needs_ref(&lo), (uint32_t)cfg->vocab_size);
	prov_check(&data->prov, data->name, ckp, ck, loss_opts_needs_ref(&lo), NULL, ignore_prov);
	pref_check_context(data, cfg->max_seq_len);
	const int learned = loss_learned_beta(&lo);
	model_ws *ws = model_ws_new(ck->m);
	batch_buf *bb = batch_new((int)bs, cfg->dim, ck->bh->K);
	pair_res *res = xcalloc((size_t)data->n + 1, sizeof *res);
	progress_meter pm;
	progress_init(&pm, data->n, "records scored");
	score_pref_set(ck, ws, bb, data, &lo, (int)bs, res, &pm);
	double el = progress_end(&pm);
	char els[32];
	fmt_duration(el, els, sizeof els);
	info("%d records scored in %s (%.1f records/s) on %s", data->n, els, data->n / (el > 1e-9 ? el : 1e-9),
	     backend_device());
	json_t *top = summarize(res, data->n, -2);
	json_object_set_new(top, "loss_kind", json_string(loss_opts_names(&lo, names, sizeof names)));
	if (lo.n_terms > 0) {
		json_t *w = json_array();
		for (int t = 0; t < lo.n_terms; t++)
			json_array_append_new(w, json_real(lo.term_w[t]));
		json_object_set_new(top, "loss_weights", w);
	}
	if (lo.kind == LOSS_ROBUST || lo.kind == LOSS_SIMPO || lo.n_terms > 0)
		json_object_set_new(top, "label_smoothing", json_real(lo.label_smoothing));
	if (lo.kind == LOSS_SIMPO) {
		json_object_set_new(top, "gamma", json_real(lo.gamma));
		json_object_set_new(top, "rewards/definition", json_string("beta * average log-prob (TRL CPOTrainer)"));
	}
	json_object_set_new(top, "checkpoint", json_string(ckp));
	json_object_set_new(top, "device", json_string(backend_device()));
	if (ck->resumed)
		json_object_set_new(top, "step", json_integer(ck->step));
	if (learned)
		json_object_set_new(top, "beta/w", json_real(exp((double)ck->bh->p[0])));
	json_t *groups = json_object();
	for (int g = 0; g < data->n_groups; g++)
		json_object_set_new(groups, data->groups[g], summarize(res, data->n, g));
	json_object_set_new(top, "groups", groups);
	if (gens)
		json_object_set_new(top, "generations", gen_stats(gens));
	if (plotdir)
		plots(plotdir, metrics, res, data->n, data);
	if (perrec) {
		outfile *pf = out_open(perrec);
		for (int i = 0; i < data->n; i++) {
			const pair_res *q = &res[i];
			const pref_rec *r = &data->r[i];
			double rcw, rrj;
			rewards(q, &rcw, &rrj);
			double rm = rcw - rrj;
			json_t *j = json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "record",
					      (json_int_t)r->index, "beta", q->beta, "ppl", q->ppl, "delta", q->delta,
					      "logp_chosen", q->pc, "logp_rejected", q->pr, "loss", q->loss,
					      "reward_margin", rm);
			if (r->id)
				json_object_set_new(j, "id", json_string(r->id));
			if (r->group >= 0)
				json_object_set_new(j, "group", json_string(data->groups[r->group]));
			char *t = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
			fprintf(pf->fp, "%s\n", t);
			free(t);
			json_decref(j);
		}
		out_close(pf);
	}
	json_save_file(outp, top, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
	json_decref(top);
	free(res);
	batch_free(bb);
	model_ws_free(ws);
	pref_free(data);
	ckpt_free(ck);
	close_stdout();
	return 0;
}
