/* lbdpo-eval — held-out metrics of a checkpoint on cached preference records:
 * loss, preference accuracy, reward margins, log-probs and their change vs
 * the reference, a KL proxy, β statistics and correlations; overall and per
 * group; optional gnuplot plots and generation statistics. man lbdpo-eval(1). */
#define _GNU_SOURCE
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/jsonl.h"
#include "libcore/betahead.h"
#include "libcore/loss.h"
#include "libcore/model.h"
#include "libcore/train.h"
#include "libcore/cpu.h"
#include "libcore/util.h"

static void usage(void)
{
	printf("usage: lbdpo-eval -c CHECKPOINT [options] < heldout.ref > summary.json\n"
	       "Evaluate a checkpoint (or a plain model) on held-out cached records.\n\n"
	       "  -i, --input FILE        records with reference scores (default stdin)\n"
	       "  -o, --output FILE       JSON summary (default stdout)\n"
	       "  -c, --checkpoint PATH   checkpoint directory or model\n"
	       "      --loss L            loss to report (default: the checkpoint's, else lbdpo)\n"
	       "      --beta X            fixed beta for the fixed-beta losses (default: the checkpoint's, else 0.1)\n"
	       "      --batch-size B      pairs per forward (default 8)\n"
	       "      --metrics FILE      training metrics (lbdpo-step --metrics) for the curves of --plot\n"
	       "      --plot DIR          write plots (PNG via gnuplot when installed) and their data into DIR\n"
	       "      --generations FILE  JSONL with \"completion\" or \"text\" strings: lengths and distinct-n\n"
	       "      --per-record FILE   also write one JSON line per record (id, group, beta, ppl, delta, logps, loss)\n"
	       "      --threads N         OpenMP/OpenBLAS threads\n"
	       "  -h, --help              this help\n"
	       "  -V, --version           print the version\n");
}

static const struct option longopts[] = {{"input", required_argument, 0, 'i'},
					 {"output", required_argument, 0, 'o'},
					 {"checkpoint", required_argument, 0, 'c'},
					 {"loss", required_argument, 0, 'L'},
					 {"beta", required_argument, 0, 'B'},
					 {"batch-size", required_argument, 0, 'b'},
					 {"metrics", required_argument, 0, 'm'},
					 {"plot", required_argument, 0, 'p'},
					 {"generations", required_argument, 0, 'g'},
					 {"threads", required_argument, 0, 't'},
					 {"per-record", required_argument, 0, 'r'},
					 {"help", no_argument, 0, 'h'},
					 {"version", no_argument, 0, 'V'},
					 {0, 0, 0, 0}};

/* Per-pair results kept for the summaries. */
typedef struct {
	double loss, beta, ppl, delta, pc, pr, rc, rr;
	int group;
} pair_res;

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
	int k = 0;
	double *b = xmalloc(sizeof(double) * (size_t)(n + 1)), *p = xmalloc(sizeof(double) * (size_t)(n + 1)),
	       *s = xmalloc(sizeof(double) * (size_t)(n + 1));
	double L = 0, acc = 0, rc = 0, rr = 0, lc = 0, lr = 0, dc = 0, dr = 0, bmin = INFINITY, bmax = -INFINITY,
	       bm = 0, b2 = 0, pm = 0;
	for (int i = 0; i < n; i++) {
		if (g != -2 && r[i].group != g)
			continue;
		const pair_res *q = &r[i];
		L += q->loss;
		double c = q->beta * (q->pc - q->rc), j = q->beta * (q->pr - q->rr);
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
		b[k] = q->beta;
		p[k] = q->ppl;
		s[k] = q->delta > 0 ? 1 : q->delta < 0 ? -1 : 0;
		k++;
	}
	json_t *o = json_object();
	json_object_set_new(o, "n", json_integer(k));
	if (k > 0) {
		bm /= k;
		json_object_set_new(o, "loss", json_real(L / k));
		json_object_set_new(o, "rewards/accuracies", json_real(acc / k));
		json_object_set_new(o, "rewards/chosen", json_real(rc / k));
		json_object_set_new(o, "rewards/rejected", json_real(rr / k));
		json_object_set_new(o, "rewards/margins", json_real((rc - rr) / k));
		json_object_set_new(o, "logps/chosen", json_real(lc / k));
		json_object_set_new(o, "logps/rejected", json_real(lr / k));
		json_object_set_new(o, "logps/chosen_change", json_real(dc / k));
		json_object_set_new(o, "logps/rejected_change", json_real(dr / k));
		json_object_set_new(o, "kl/chosen", json_real(dc / k));
		json_object_set_new(o, "beta/mean", json_real(bm));
		json_object_set_new(o, "beta/std", json_real(sqrt(fmax(0, b2 / k - bm * bm))));
		json_object_set_new(o, "beta/min", json_real(bmin));
		json_object_set_new(o, "beta/max", json_real(bmax));
		json_object_set_new(o, "ppl/prompt", json_real(pm / k));
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

static int have_gnuplot(void) { return system("command -v gnuplot >/dev/null 2>&1") == 0; }

/* Data files and a gnuplot script in dir; PNGs when gnuplot is installed. */
static void plots(const char *dir, const char *metrics, const pair_res *r, int n, const pref_set *data)
{
	if (mkdir(dir, 0777) != 0 && errno != EEXIST)
		die("cannot create %s: %s", dir, strerror(errno));
	char *p;
	if (asprintf(&p, "%s/beta.dat", dir) < 0)
		die("out of memory");
	outfile *o = out_open(p);
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
		fprintf(o->fp, "%d \"%s\" %.9g %d\n", g, data->groups[g], k ? s / k : 0, k);
	}
	out_close(o);
	free(p);
	if (metrics) {
		/* step loss accuracy, from the JSON lines of lbdpo-step --metrics */
		jsonl *f = jsonl_open(metrics);
		if (asprintf(&p, "%s/curves.dat", dir) < 0)
			die("out of memory");
		o = out_open(p);
		fprintf(o->fp, "# step loss accuracy beta_mean\n");
		const char *line;
		size_t len;
		int rc;
		char err[512];
		while ((rc = jsonl_next(f, &line, &len)) == 1) {
			json_t *j = jsonl_parse(line, len, err, sizeof err);
			if (!j)
				die("%s: line %llu: %s", jsonl_name(f), (unsigned long long)jsonl_lineno(f), err);
			fprintf(o->fp, "%lld %.9g %.9g %.9g\n", (long long)json_integer_value(json_object_get(j, "step")),
				json_number_value(json_object_get(j, "loss")),
				json_number_value(json_object_get(j, "rewards/accuracies")),
				json_number_value(json_object_get(j, "beta/mean")));
			json_decref(j);
		}
		if (rc < 0)
			die("%s: %s", jsonl_name(f), jsonl_error(f));
		jsonl_close(f);
		out_close(o);
		free(p);
	}
	if (asprintf(&p, "%s/plots.gp", dir) < 0)
		die("out of memory");
	o = out_open(p);
	fprintf(o->fp,
		"set terminal pngcairo size 800,500\n"
		"set output 'beta_hist.png'\nset title 'beta(x)'\n"
		"stats 'beta.dat' using 1 nooutput\nbw = (STATS_max - STATS_min) / 30.0\nif (bw <= 0) bw = 1e-3\n"
		"bin(x) = bw*floor(x/bw) + bw/2\nset boxwidth bw*0.9\nset style fill solid 0.6\n"
		"plot 'beta.dat' using (bin($1)):(1.0) smooth freq with boxes title 'count'\n"
		"set output 'beta_ppl.png'\nset title 'beta vs prompt PPL'\nset xlabel 'PPL'\nset ylabel 'beta'\n"
		"plot 'beta.dat' using 2:1 with points pt 7 ps 0.5 title ''\n"
		"unset xlabel\nunset ylabel\n");
	/* ungrouped data (e.g. HH-RLHF) has no per-group plot: gnuplot fails on an empty file */
	if (data->n_groups > 0)
		fprintf(o->fp, "set output 'beta_groups.png'\nset title 'mean beta per group'\n"
			       "set style fill solid 0.6\nset boxwidth 0.5\nset yrange [0:*]\nset xrange [-0.5:%d.5]\n"
			       "plot 'beta_groups.dat' using 1:3:xtic(2) with boxes title 'mean beta'\n"
			       "set autoscale\n",
			data->n_groups - 1);
	if (metrics)
		fprintf(o->fp, "set output 'curves.png'\nset title 'training'\nset xlabel 'step'\nset ylabel ''\n"
			       "set style data lines\n"
			       "plot 'curves.dat' using 1:2 title 'loss', '' using 1:3 title 'accuracy'\n");
	out_close(o);
	free(p);
	if (have_gnuplot()) {
		char *cmd;
		if (asprintf(&cmd, "cd '%s' && gnuplot plots.gp", dir) < 0)
			die("out of memory");
		if (system(cmd) != 0)
			warning("gnuplot failed on %s/plots.gp", dir);
		free(cmd);
	} else {
		warning("gnuplot not found: wrote the data and %s/plots.gp only", dir);
	}
}

int main(int argc, char **argv)
{
	set_progname("lbdpo-eval");
	lbdpo_runtime_init(argv);
	const char *in = NULL, *outp = NULL, *ckp = NULL, *metrics = NULL, *plotdir = NULL, *gens = NULL;
	const char *perrec = NULL;
	int kind = -1;
	double beta = -1;
	long bs = 8, threads = 0;
	int c;
	while ((c = getopt_long(argc, argv, "i:o:c:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'i': in = optarg; break;
		case 'o': outp = optarg; break;
		case 'c': ckp = optarg; break;
		case 'L':
			if ((kind = loss_kind_parse(optarg)) < 0)
				die_usage("--loss: unknown loss '%s'", optarg);
			break;
		case 'B': beta = parse_double("--beta", optarg, 1e-9, 1e6); break;
		case 'b': bs = parse_long("--batch-size", optarg, 1, 1 << 20); break;
		case 'm': metrics = optarg; break;
		case 'p': plotdir = optarg; break;
		case 'g': gens = optarg; break;
		case 'r': perrec = optarg; break;
		case 't': threads = parse_long("--threads", optarg, 0, 4096); break;
		case 'h': usage(); close_stdout(); return 0;
		case 'V': print_version("lbdpo-eval"); return 0;
		default: die_usage("unknown option");
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
	if (!ckp)
		die_usage("--checkpoint is required");
	if (threads > 0)
		lbdpo_set_threads((int)threads);
	ckpt *ck = ckpt_load(ckp, 0, HEAD_LINEAR, 0, 0.1f, POOL_LAST, PPL_POLICY, 1.0, 1);
	loss_opts lo;
	loss_opts_default(&lo);
	json_t *opts = ck->state ? json_object_get(ck->state, "options") : NULL;
	if (kind < 0 && opts && json_is_string(json_object_get(opts, "loss")))
		kind = loss_kind_parse(json_string_value(json_object_get(opts, "loss")));
	lo.kind = kind < 0 ? LOSS_LBDPO : (loss_kind)kind;
	if (beta < 0 && opts && json_is_number(json_object_get(opts, "beta")))
		beta = json_number_value(json_object_get(opts, "beta"));
	lo.beta = beta > 0 ? beta : 0.1;
	if (opts) {
		json_t *v;
		if ((v = json_object_get(opts, "label_smoothing")) && json_is_number(v))
			lo.label_smoothing = json_number_value(v);
		if ((v = json_object_get(opts, "gamma")) && json_is_number(v))
			lo.gamma = json_number_value(v);
		if ((v = json_object_get(opts, "sft_weight")) && json_is_number(v))
			lo.sft_weight = json_number_value(v);
	}
	if (lo.kind == LOSS_BETADPO)
		lo.kind = LOSS_DPO; /* held-out: β0 without the batch calibration */
	if (lo.kind == LOSS_LBDPO && !ck->resumed)
		warning("%s has no trained beta model: beta = w*PPL with w = 1", ckp);
	const model_config *cfg = model_cfg(ck->m);
	pref_set *data = pref_load(in, loss_needs_ref(lo.kind), (uint32_t)cfg->vocab_size);
	const int learned = loss_uses_learned_beta(lo.kind);
	model_ws *ws = model_ws_new(ck->m);
	batch_buf *bb = batch_new((int)bs, cfg->dim, ck->bh->K);
	pref_rec **recs = xmalloc(sizeof(pref_rec *) * (size_t)bs);
	pair_res *res = xcalloc((size_t)data->n + 1, sizeof *res);
	for (int s = 0; s < data->n; s += (int)bs) {
		int B = data->n - s < bs ? data->n - s : (int)bs;
		for (int i = 0; i < B; i++)
			recs[i] = &data->r[s + i];
		batch_forward(ck, ws, bb, recs, B, 2, 0, learned, lo.beta);
		/* per-pair loss terms: a batch of one pair at a time gives ℓ_i */
		for (int i = 0; i < B; i++) {
			loss_stats st;
			loss_batch(&lo, &bb->lp[i], 1, NULL, NULL, NULL, &st);
			pair_res *q = &res[s + i];
			q->loss = st.loss; /* preference term + weighted SFT term (no regularizers) */
			q->beta = bb->lp[i].beta;
			q->ppl = exp(-bb->m[i]);
			q->pc = bb->lp[i].pc;
			q->pr = bb->lp[i].pr;
			q->rc = bb->lp[i].rc;
			q->rr = bb->lp[i].rr;
			q->delta = (q->pc - q->rc) - (q->pr - q->rr);
			q->group = recs[i]->group;
		}
	}
	json_t *top = summarize(res, data->n, -2);
	json_object_set_new(top, "loss_kind", json_string(loss_kind_name(lo.kind)));
	json_object_set_new(top, "checkpoint", json_string(ckp));
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
			json_t *j = json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "record", (json_int_t)r->index,
					      "beta", q->beta, "ppl", q->ppl, "delta", q->delta, "logp_chosen", q->pc,
					      "logp_rejected", q->pr, "loss", q->loss, "reward_margin",
					      q->beta * q->delta);
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
	free(recs);
	batch_free(bb);
	model_ws_free(ws);
	pref_free(data);
	ckpt_free(ck);
	close_stdout();
	return 0;
}
