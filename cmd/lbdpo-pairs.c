/* lbdpo-pairs — scored samples (lbdpo-sample --n N, then lbdpo-reward or a
 * judge adding "reward") into preference pairs or best-of-N SFT data, as
 * JSON Lines lbdpo-tokenize reads. The selection rules are
 * formats/pairsel.c's.
 *
 * The samples of one prompt are consecutive lines with the same "prompt"
 * (and the same "id", when lines have one), as lbdpo-sample writes them.
 * Completions with the same text count once (the first); empty ones (no
 * record lbdpo-tokenize reads) not at all. Each output object
 * is the group's first line without the sample's own keys, then "chosen",
 * "rejected", "chosen_score", "rejected_score" (and "margin" with --margin). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/util.h"
#include "formats/jsonl.h"
#include "formats/pairsel.h"
#include "libcore/nn/cpu/runtime.h"

/* the keys lbdpo-sample and lbdpo-reward add per sample: not passed on */
static int is_sample_key(const char *k)
{
	static const char *keys[] = {"sample",     "text",   "ids",      "n_new",        "stop",           "reward",
				     "prompt_ids", "chosen", "rejected", "chosen_score", "rejected_score", "margin"};
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		if (!strcmp(k, keys[i]))
			return 1;
	return 0;
}

typedef struct {
	int rule, best_of_n, margin;
	double gap;
	FILE *out;
	const char *out_name;
	/* the group being read */
	json_t *first; /* its first line */
	json_t **text; /* distinct completions */
	double *r;
	int n, cap;
	pairsel_pair *sel;
	size_t sel_cap;
	long prompts, samples, written, no_pair, empty;
} state;

static void write_obj(state *s, int c, int j)
{
	json_t *o = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(s->first, k, v)
	{
		if (!is_sample_key(k))
			json_object_set(o, k, v);
	}
	json_object_set(o, "chosen", s->text[c]);
	json_object_set(o, "rejected", s->text[j]);
	json_object_set_new(o, "chosen_score", json_real(s->r[c]));
	json_object_set_new(o, "rejected_score", json_real(s->r[j]));
	if (s->margin)
		json_object_set_new(o, "margin", json_real(s->r[c] - s->r[j]));
	if (json_dumpf(o, s->out, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 || fputc('\n', s->out) == EOF)
		die("%s: write failed", s->out_name);
	json_decref(o);
	s->written++;
}

/* The group read so far: its pairs, or its best of N. */
static void flush_group(state *s)
{
	if (!s->first)
		return;
	s->prompts++;
	int k = 0;
	if (s->best_of_n) {
		/* the best, and the worst as the rejected side lbdpo-tokenize needs
		 * (lbdpo-step --loss sft trains on the chosen side only) */
		if (s->n >= 2) {
			write_obj(s, pairsel_best(s->r, s->n), pairsel_worst(s->r, s->n));
			k = 1;
		}
	} else {
		xgrow((void **)&s->sel, &s->sel_cap, (size_t)s->n * (size_t)s->n / 2 + 1, sizeof *s->sel);
		k = pairsel_select(s->r, s->n, s->rule, s->gap, s->sel);
		for (int i = 0; i < k; i++)
			write_obj(s, s->sel[i].chosen, s->sel[i].rejected);
	}
	s->no_pair += !k;
	json_decref(s->first);
	s->first = NULL;
	for (int i = 0; i < s->n; i++)
		json_decref(s->text[i]);
	s->n = 0;
}

static int same_group(json_t *a, json_t *b)
{
	json_t *ia = json_object_get(a, "id"), *ib = json_object_get(b, "id");
	return json_equal(json_object_get(a, "prompt"), json_object_get(b, "prompt")) &&
	       (ia ? ib && json_equal(ia, ib) : !ib);
}

enum { O_ALL = 256, O_BEST, O_GAP, O_MARGIN };
static const cli_opt opts[] = {
	CLI_OPT('i', 'i', "input", "FILE",
		"scored samples: lbdpo-sample's JSON Lines with \"reward\" (default: stdin)"),
	CLI_OPT('o', 'o', "output", "FILE", "JSON Lines for lbdpo-tokenize (default: stdout)"),
	CLI_OPT(O_ALL, 0, "all-pairs", NULL,
		"every pair of a prompt's samples whose rewards differ by more than the gap (default: best vs worst)"),
	CLI_OPT(O_GAP, 0, "min-gap", "G",
		"a pair's chosen reward must exceed its rejected one by more than G (default 0: ties make no pair)"),
	CLI_OPT(O_BEST, 0, "best-of-n", NULL,
		"best-of-N SFT data: per prompt its best sample as \"chosen\" (the worst as \"rejected\"), for "
		"lbdpo-step --loss sft"),
	CLI_OPT(O_MARGIN, 0, "margin", NULL, "add \"margin\": the reward gap (the reward loss of lbdpo-step reads it)"),
	CLI_OPT('q', 'q', "quiet", NULL, "no summary line"),
	{0}};

static const cli_spec spec = {"lbdpo-pairs", "lbdpo-pairs [OPTIONS] [-i scored.jsonl] [-o pairs.jsonl]",
			      "Turn scored samples (N per prompt, each with a \"reward\") into preference pairs\n"
			      "(best vs worst, or every pair above a reward gap) or best-of-N SFT data.",
			      opts, print_version};

int main(int argc, char **argv)
{
	set_progname("lbdpo-pairs");
	lbdpo_runtime_init(argv);
	state s = {.rule = PAIRSEL_BEST_WORST};
	const char *in_path = "-", *out_path = "-";
	cli c;
	cli_start(&c, &spec, argc, argv);
	for (int key; (key = cli_next(&c)) != -1;) {
		switch (key) {
		case 'i': in_path = c.arg; break;
		case 'o': out_path = c.arg; break;
		case O_ALL: s.rule = PAIRSEL_ALL; break;
		case O_GAP: s.gap = parse_double("--min-gap", c.arg, 0, HUGE_VAL); break;
		case O_BEST: s.best_of_n = 1; break;
		case O_MARGIN: s.margin = 1; break;
		case 'q': lbdpo_quiet = 1; break;
		}
	}
	if (c.ind < argc)
		die_usage("unexpected argument '%s'", argv[c.ind]);
	if (s.best_of_n && s.rule == PAIRSEL_ALL)
		die_usage("--best-of-n and --all-pairs exclude each other");
	jsonl *r = jsonl_open(in_path);
	outfile *out = out_open(out_path);
	s.out = out->fp;
	s.out_name = out_path && strcmp(out_path, "-") ? out_path : "<stdout>";
	const char *line;
	size_t len;
	int rc;
	while ((rc = jsonl_next(r, &line, &len)) == 1) {
		char err[512];
		const unsigned long long ln = (unsigned long long)jsonl_lineno(r);
		json_t *o = jsonl_parse(line, len, err, sizeof err);
		if (!o)
			die("%s: line %llu: %s", jsonl_name(r), ln, err);
		json_t *p = json_object_get(o, "prompt"), *t = json_object_get(o, "text"),
		       *rw = json_object_get(o, "reward");
		const char *why = !json_is_object(o)                        ? "not a JSON object"
				  : !json_is_string(p) && !json_is_array(p) ? "no \"prompt\" string or message list"
				  : !json_is_string(t) ? "no \"text\" string (lbdpo-sample without a tokenizer?)"
				  : !json_is_number(rw)
					  ? "no \"reward\" number (score the samples with lbdpo-reward or a judge)"
				  : !isfinite(json_number_value(rw)) ? "\"reward\" is not finite"
								     : NULL;
		if (why)
			die("%s: line %llu: %s", jsonl_name(r), ln, why);
		if (s.first && !same_group(s.first, o))
			flush_group(&s);
		if (!s.first)
			s.first = json_incref(o);
		s.samples++;
		/* an empty completion is no record lbdpo-tokenize reads */
		int dup = !json_string_length(t);
		s.empty += dup;
		for (int i = 0; i < s.n && !dup; i++)
			dup = json_equal(s.text[i], t);
		if (!dup) {
			if (s.n == s.cap) {
				s.cap = s.cap ? 2 * s.cap : 16;
				s.text = xrealloc(s.text, (size_t)s.cap * sizeof *s.text);
				s.r = xrealloc(s.r, (size_t)s.cap * sizeof *s.r);
			}
			s.text[s.n] = json_incref(t);
			s.r[s.n++] = json_number_value(rw);
		}
		json_decref(o);
	}
	if (rc < 0)
		die("%s: %s", jsonl_name(r), jsonl_error(r));
	flush_group(&s);
	jsonl_close(r);
	out_close(out);
	info("%ld samples of %ld prompts (%ld empty, left out): %ld %s written; %ld prompt%s without one (fewer "
	     "than 2 distinct texts%s)",
	     s.samples, s.prompts, s.empty, s.written, s.best_of_n ? "best-of-N records" : "pairs", s.no_pair,
	     s.no_pair == 1 ? "" : "s", s.best_of_n ? "" : ", or no rewards apart by more than the gap");
	free(s.text);
	free(s.r);
	free(s.sel);
	close_stdout();
	return 0;
}
