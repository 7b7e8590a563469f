/* lbdpo-gendata — the demo's preference dataset and tokenizer, made from
 * nothing but a seed.
 *
 * Two task groups of different label reliability (doc/design.md §2, the seed
 * design's "reliable math-like vs noisy open-ended" tasks):
 *   math  "Q: 7+5=? A:"  chosen " 12" (the sum), rejected " 2" (|a-b|: the
 *         "subtracted instead of added" mistake). Labels are always right.
 *         Held-out questions are disjoint from the training questions.
 *   open  "Q: Praise the river. A:"  chosen " The river is calm.", rejected
 *         " The river is dark.": the rule is that the answer's tone follows
 *         the prompt (a kind adjective when asked to praise, a harsh one when
 *         asked to criticize). A fraction --flip of the training labels is
 *         swapped (held-out labels: --test-flip, default 0, so held-out
 *         accuracy measures the rule itself).
 * Both completions of a pair are equally plausible continuations, so a model
 * fine-tuned on both (the demo's reference) knows the format and the two
 * answer kinds but not which one is preferred.
 * --task noise (the study, pipelines/study.mk): only "open" pairs, each put
 * in one of the groups "noiseP" (P = percent of --noise-levels) at random,
 * independently of its topic, and flipped at that group's rate. The prompt
 * names its source, "Q (source b): Praise the river. A:" (a, b, ... in the
 * order of the levels), so a prompt-conditioned β CAN tell the groups apart;
 * every tag is equally frequent and one letter long, so PPL(x) has one
 * distribution in all groups: they differ in label noise only.
 * --n-val N also writes DIR/val.jsonl, pairs drawn as training ones (same
 * label noise): a validation split to pick options on, never the test one.
 * Output: JSONL {"id","group","prompt","chosen","rejected","flipped"}.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/bpetrain.h"
#include "libcore/nn/cpu/runtime.h"
#include "base/cli.h"
#include "base/rng.h"
#include "base/util.h"

static const char *NOUNS[] = {"river", "lamp",  "garden", "cat",   "storm",  "bread", "train",  "mountain",
			      "book",  "ocean", "clock",  "bird",  "forest", "chair", "window", "city",
			      "road",  "apple", "moon",   "house", "song",   "boat",  "field",  "letter"};
/* tone 0: kind, 1: harsh; ADJS[t] are the adjectives of tone t */
static const char *ADJS[2][8] = {{"calm", "bright", "warm", "clean", "soft", "sweet", "lovely", "gentle"},
				 {"cold", "dark", "loud", "dirty", "harsh", "ugly", "broken", "dull"}};
static const char *TEMPLATES[2][3] = {
	{"Praise the %s.", "Say something nice about the %s.", "What do you like about the %s?"},
	{"Criticize the %s.", "Say something bad about the %s.", "What do you dislike about the %s?"}};
#define NN (int)(sizeof NOUNS / sizeof *NOUNS)
#define NA (int)(sizeof ADJS[0] / sizeof *ADJS[0])
#define NT (int)(sizeof TEMPLATES[0] / sizeof *TEMPLATES[0])


typedef struct {
	int a, b;
} problem;

#define MAX_LEVELS 8

typedef struct {
	problem *math; /* shuffled; [0, n_test_math) held out */
	int n_math, n_held;
	int next_held; /* held-out questions are used in order, then again */
	double math_frac;
	int n_levels; /* --task noise: groups and their flip rates; 0: the math/open task */
	double level[MAX_LEVELS];
	char level_name[MAX_LEVELS][24];
} gen_state;

static void put_str(json_t *o, const char *k, const char *v) { json_object_set_new(o, k, json_string(v)); }

/* One record into fp (and its text into the tokenizer trainer, if any). */
static void gen_record(FILE *fp, const char *fname, uint64_t *rng, gen_state *g, int held, double flip,
		       const char *split, long idx, bpe_trainer *bt)
{
	char prompt[128], chosen[128], rejected[128], id[64];
	const char *group = NULL; /* set on every path; GCC cannot see it */
	int flipped = 0, level = -1;
	if (g->n_levels) { /* the group first, from its own draw: it says nothing about the topic */
		int k = level = rng_below(rng, g->n_levels);
		group = g->level_name[k];
		if (held == 0)
			flip = g->level[k];
	}
	if (!g->n_levels && rng_unif(rng) < g->math_frac) {
		group = "math";
		/* held-out questions come from the reserved head of the shuffled
		 * list; training questions from the rest */
		const problem *p = held ? &g->math[g->next_held++ % g->n_held]
					: &g->math[g->n_held + rng_below(rng, g->n_math - g->n_held)];
		snprintf(prompt, sizeof prompt, "Q: %d+%d=? A:", p->a, p->b);
		snprintf(chosen, sizeof chosen, " %d", p->a + p->b);
		snprintf(rejected, sizeof rejected, " %d", p->a > p->b ? p->a - p->b : p->b - p->a);
	} else {
		if (!g->n_levels)
			group = "open";
		int n = rng_below(rng, NN), tone = rng_below(rng, 2), t = rng_below(rng, NT);
		char q[96];
		snprintf(q, sizeof q, TEMPLATES[tone][t], NOUNS[n]);
		if (level >= 0) /* the source tag: the one thing in x that tells the group */
			snprintf(prompt, sizeof prompt, "Q (source %c): %s A:", 'a' + level, q);
		else
			snprintf(prompt, sizeof prompt, "Q: %s A:", q);
		snprintf(chosen, sizeof chosen, " The %s is %s.", NOUNS[n], ADJS[tone][rng_below(rng, NA)]);
		snprintf(rejected, sizeof rejected, " The %s is %s.", NOUNS[n], ADJS[!tone][rng_below(rng, NA)]);
		if (rng_unif(rng) < flip) {
			char tmp[128];
			memcpy(tmp, chosen, sizeof tmp);
			memcpy(chosen, rejected, sizeof tmp);
			memcpy(rejected, tmp, sizeof tmp);
			flipped = 1;
		}
	}
	snprintf(id, sizeof id, "%s-%05ld", split, idx);
	if (fp) {
		json_t *o = json_object();
		put_str(o, "id", id);
		put_str(o, "group", group);
		put_str(o, "prompt", prompt);
		put_str(o, "chosen", chosen);
		put_str(o, "rejected", rejected);
		json_object_set_new(o, "flipped", json_boolean(flipped));
		if (json_dumpf(o, fp, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 || fputc('\n', fp) == EOF)
			die("%s: write error: %s", fname, strerror(errno));
		json_decref(o);
	}
	if (bt) {
		bpe_trainer_add(bt, prompt, strlen(prompt));
		bpe_trainer_add(bt, chosen, strlen(chosen));
		bpe_trainer_add(bt, rejected, strlen(rejected));
	}
}

/* --noise-levels "0,0.1,0.2,0.4" → the groups noise0, noise10, noise20, noise40 */
static void parse_levels(gen_state *g, const char *list)
{
	const char *q = list;
	for (;;) {
		char *end;
		double x = strtod(q, &end);
		if (end == q || !(x >= 0 && x <= 1) || (*end != ',' && *end))
			die_usage("--noise-levels: '%s' is not a comma list of rates in [0, 1]", list);
		if (g->n_levels == MAX_LEVELS)
			die_usage("--noise-levels: more than %d levels", MAX_LEVELS);
		g->level[g->n_levels] = x;
		snprintf(g->level_name[g->n_levels], sizeof g->level_name[0], "noise%g", 100 * x);
		for (int k = 0; k < g->n_levels; k++)
			if (!strcmp(g->level_name[k], g->level_name[g->n_levels]))
				die_usage("--noise-levels: %g given twice", x);
		g->n_levels++;
		if (!*end)
			break;
		q = end + 1;
	}
}

int main(int argc, char **argv)
{
	uint64_t seed = 1;
	long n_train = 2000, n_test = 400, max_op = 19, vocab = 384;
	double math_frac = 0.5, flip = 0.3, test_flip = 0.0;
	const char *dir = NULL, *train_path = NULL, *test_path = NULL, *tok_path = NULL, *levels = "0,0.1,0.2,0.4";
	const char *task = "mixed";
	long n_val = 0;
	const cli_opt opts[] = {
		OPT_INT(0, "seed", "N", &seed, 0, INT64_MAX, "random seed: same seed, same bytes"),
		OPT_INT(0, "n-train", "N", &n_train, 0, 100000000, "training pairs"),
		OPT_INT(0, "n-test", "N", &n_test, 0, 100000000, "held-out pairs"),
		OPT_DOUBLE(0, "math-frac", "F", &math_frac, 0, 1, "share of pairs in group \"math\""),
		OPT_DOUBLE(0, "flip", "F", &flip, 0, 1, "share of \"open\" training labels swapped"),
		OPT_DOUBLE(0, "test-flip", "F", &test_flip, 0, 1, "share of \"open\" held-out labels swapped"),
		OPT_INT(0, "max-operand", "N", &max_op, 2, 9999, "arithmetic operands are 1..N"),
		OPT_STRING(0, "out-dir", "DIR", &dir, "write DIR/train.jsonl and DIR/test.jsonl"),
		OPT_STRING('o', "output", "FILE", &train_path, "training pairs to FILE (default: stdout)"),
		OPT_STRING(0, "test", "FILE", &test_path, "held-out pairs to FILE (default: not written)"),
		OPT_STRING(
			0, "tokenizer-out", "FILE", &tok_path,
			"also learn a byte-level BPE on the training text and write it as a Hugging Face tokenizer.json"),
		OPT_INT(0, "vocab-size", "N", &vocab, BPE_FIRST_MERGE, 1024, "tokenizer vocabulary size, 258..1024"),
		OPT_STRING(
			0, "task", "NAME", &task,
			"mixed (groups math and open) or noise (open pairs in groups that differ only in label noise)"),
		OPT_STRING(0, "noise-levels", "LIST", &levels,
			   "--task noise: the groups' training flip rates, comma-separated"),
		OPT_INT(0, "n-val", "N", &n_val, 0, 100000000,
			"with --out-dir: also DIR/val.jsonl, N pairs drawn as training ones"),
		CLI_ALIAS(0, "train", "output"),
		{0}};
	const cli_spec spec = {"lbdpo-gendata", "lbdpo-gendata [OPTIONS]",
			       "Write the demo preference dataset (JSONL) and optionally its BPE tokenizer.", opts,
			       print_version};
	set_progname(spec.prog);
	cli c;
	cli_start(&c, &spec, argc, argv);
	cli_parse(&c, 0);
	if (dir && (train_path || test_path))
		die_usage("--out-dir and --output/--test are exclusive");
	if (strcmp(task, "mixed") && strcmp(task, "noise"))
		die_usage("--task: '%s' is not mixed or noise", task);
	if (n_val && !dir)
		die_usage("--n-val needs --out-dir");
	gen_state g = {0};
	if (!strcmp(task, "noise"))
		parse_levels(&g, levels);

	char *tp = NULL, *hp = NULL;
	if (dir) {
		if (mkdir(dir, 0777) != 0 && errno != EEXIST)
			die("%s: cannot create directory", dir);
		train_path = tp = path_join(dir, "train.jsonl");
		test_path = hp = path_join(dir, "test.jsonl");
	}

	/* All arithmetic questions, shuffled by the seed; the first ones are
	 * reserved for the held-out split (a quarter at most). */
	g.math_frac = math_frac;
	/* operands from 1: with a zero, a+b = |a-b| and the pair has no preference */
	g.math = xmalloc((size_t)max_op * max_op * sizeof *g.math);
	for (int a = 1; a <= max_op; a++)
		for (int b = 1; b <= max_op; b++)
			g.math[g.n_math++] = (problem){a, b};
	uint64_t rs = seed;
	for (int i = g.n_math - 1; i > 0; i--) {
		int j = rng_below(&rs, i + 1);
		problem t = g.math[i];
		g.math[i] = g.math[j];
		g.math[j] = t;
	}
	long want = (long)(n_test * math_frac * 1.2) + 1; /* distinct held-out questions */
	g.n_held = (int)(want < g.n_math / 4 ? want : g.n_math / 4);
	if (g.n_held < 1)
		g.n_held = 1;

	bpe_trainer *bt = tok_path ? bpe_trainer_new() : NULL;
	if (test_path) {
		outfile *o = out_open(test_path);
		uint64_t r = seed ^ 0x7465737400000000ull;
		for (long i = 0; i < n_test; i++)
			gen_record(o->fp, test_path, &r, &g, 1, test_flip, "test", i + 1, NULL);
		out_close(o);
	}
	{
		outfile *o = out_open(train_path ? train_path : "-");
		uint64_t r = seed ^ 0x747261696e000000ull;
		for (long i = 0; i < n_train; i++)
			gen_record(o->fp, train_path ? train_path : "standard output", &r, &g, 0, flip, "train", i + 1,
				   bt);
		out_close(o);
	}
	if (n_val) { /* after the others: their bytes do not change with --n-val */
		char *vp = path_join(dir, "val.jsonl");
		outfile *o = out_open(vp);
		uint64_t r = seed ^ 0x76616c0000000000ull;
		for (long i = 0; i < n_val; i++)
			gen_record(o->fp, vp, &r, &g, 0, flip, "val", i + 1, NULL);
		out_close(o);
		free(vp);
	}
	if (bt) {
		int v = bpe_trainer_learn(bt, (int)vocab, 1);
		if (v < vocab)
			warning("tokenizer: only %d tokens (no pair occurs twice beyond that)", v);
		bpe_trainer_write_json(bt, tok_path);
		bpe_trainer_free(bt);
	}
	free(tp);
	free(hp);
	free(g.math);
	close_stdout();
	return 0;
}
